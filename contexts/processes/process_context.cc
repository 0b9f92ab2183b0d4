#include "contexts/processes/process_context.h"

#include <sys/eventfd.h>
#include <sys/stat.h>

#include <cerrno>
#include <new>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "contexts/common/shared_memory.h"
#include "contexts/processes/launch.h"
#include "contexts/processes/stdio_at_fork.h"
#include "contexts/processes/supervisor.h"

namespace pasha {
namespace {

using processes::close_quietly;
using processes::drain_eventfd;

// Arrays smaller than this are left to page faults in the workers: a few faults cost about as much
// as the system calls that would avoid them.
constexpr std::size_t kPopulateMinBytes = std::size_t{256} << 10;

// Maps over fewer elements than this do not populate at all: a small map touches few pages, and
// populating every large live array would cost far more than the map itself.
constexpr std::size_t kPopulateMinElements = 4096;

}  // namespace

ProcessContext::ProcessContext() : ProcessContext(default_num_workers()) {}

ProcessContext::ProcessContext(int num_workers, Binding binding, ForkMode fork_mode)
    : BoundContext(num_workers, binding), fork_mode_(fork_mode), mappings_(std::make_shared<SharedMappings>()) {
  make_process_state();
}

ProcessContext::~ProcessContext() {
  reap_exiting_workers();
  close_quietly(events_);
}

void ProcessContext::make_process_state() {
  control_memory_ = map_shared(ControlBlock::bytes_for(num_workers()));
  control_ = new (control_memory_.get()) ControlBlock;
  for (int w = 0; w < num_workers(); ++w) new (&control_->record(w)) processes::WorkerRecord;
  events_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (events_ < 0) {
    throw std::system_error(errno, std::generic_category(), "pasha::ProcessContext: eventfd");
  }
}

void ProcessContext::rebuild_after_fork() {
  // The exiting workers, the control block and the eventfd are the parent's: let them go here and
  // make our own. (The pidfds are this process's copies; closing them does not touch the parent.)
  for (Exiting& child : exiting_) close_quietly(child.pidfd);
  exiting_.clear();
  close_quietly(events_);
  make_process_state();
}

void ProcessContext::wait_for_exited_workers() {
  if (this_worker_id() >= 0) return;  // inside a worker, which has no worker of this context to reap
  exclusively([this] { reap_exiting_workers(); });
}

void ProcessContext::reap_exiting_workers() noexcept {
  for (Exiting& child : exiting_) {
    bool elsewhere = false;
    processes::reap(child, true, elsewhere);
    close_quietly(child.pidfd);
  }
  exiting_.clear();
}

std::shared_ptr<void> ProcessContext::allocate(std::size_t bytes) { return mappings_->allocate(bytes); }

void ProcessContext::launch(backend::Job& job) {
  reap_exiting_workers();
  const int num_active = job.num_active_workers();
  if (num_active == 0) return;

  ControlBlock& block = *control_;
  block.control.reset();
  block.exits_released.store(0, std::memory_order_relaxed);
  const std::uint32_t generation = block.generation.fetch_add(1, std::memory_order_acq_rel) + 1;
  for (int w = 0; w < num_active; ++w) block.record(w).reset();
  drain_eventfd(events_);

  struct stat identity {};
  fstat(events_, &identity);
  const processes::Launch launch{
      .context = *this,
      .job = job,
      .block = block,
      .binding = plan_,
      .tree = ForkTree(num_active, fork_mode_ == ForkMode::tree && fork_tree_available()),
      .regions = job.num_elements() >= kPopulateMinElements ? mappings_->snapshot(kPopulateMinBytes)
                                                            : std::vector<SharedMappings::Region>(),
      .events = {.fd = events_, .device = identity.st_dev, .inode = identity.st_ino},
      .generation = generation,
  };
  processes::flush_caller_output();
  processes::Supervisor supervisor(launch);
  supervisor.start();
  if (const std::optional<int> failed = supervisor.supervise()) supervisor.reap_all_and_throw(*failed);
  // Every worker has exited, and is reaped, before map returns: none still holds a file, a lock or a
  // socket the caller had when it forked.
  exiting_ = supervisor.release_exiting();
  reap_exiting_workers();
}

}  // namespace pasha
