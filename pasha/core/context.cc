#include "pasha/core/context.h"

#include <unistd.h>

#include <chrono>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>

#include "pasha/core/detail/progress.h"
#include "pasha/core/detail/worker_identity.h"

namespace pasha {
namespace {

std::uint64_t next_context_id() noexcept {
  static std::atomic<std::uint64_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

}  // namespace

int checked_num_workers(long long num_workers) {
  if (num_workers < 1 || num_workers > kMaxWorkers) {
    throw std::invalid_argument("pasha: num_workers must be between 1 and " + std::to_string(kMaxWorkers) +
                                ", got " + std::to_string(num_workers));
  }
  return static_cast<int>(num_workers);
}

Context::Context(int num_workers)
    : num_workers_(checked_num_workers(num_workers)),
      id_(next_context_id()),
      owner_pid_(getpid()) {}

Context::~Context() = default;

Context::RawArray Context::alloc_raw(const Shape& shape, std::size_t element_size, Order order, bool per_worker,
                                     bool pad_worker_slices) {
  if (element_size == 0) throw std::invalid_argument("pasha::alloc: elements of 0 bytes");
  const detail::Layout layout = [&] {
    if (!per_worker) return detail::contiguous_layout(shape, element_size, order);
    if (pad_worker_slices) return detail::per_worker_layout(shape, element_size, order, num_workers_, kAlignment);
    return detail::contiguous_layout(with_worker_axis(shape, order, num_workers_), element_size, order);
  }();
  std::shared_ptr<void> memory = allocate_array({.shape = layout.shape,
                                                 .strides = layout.strides,
                                                 .element_size = element_size,
                                                 .order = order,
                                                 .per_worker = per_worker,
                                                 .bytes = layout.bytes});
  void* data = memory.get();
  return {std::move(memory), data, layout.shape, layout.strides, layout.bytes, allocates_zeros(layout.bytes)};
}

void Context::add_hook(std::shared_ptr<MapHook> hook) {
  if (!hook) throw std::invalid_argument("pasha: add_hook got a null hook");
  const auto inside_a_map = [] {
    return std::logic_error("pasha: add_hook from inside a map of the same context (a hook or a kernel), whose hooks "
                            "are in use; add hooks before or after its maps");
  };
  if (map_holder_.load(std::memory_order_acquire) == detail::this_thread_token()) throw inside_a_map();
  adopt_if_forked();
  if (this_worker_id() >= 0) {
    // A kernel's (or a thread it started): waiting could wait for the kernel calling us.
    std::unique_lock lock(map_mutex_, std::try_to_lock);
    if (!lock.owns_lock()) throw inside_a_map();
    hooks_.push_back(std::move(hook));
    return;
  }
  MapTurn turn;
  take_turn(turn);
  hooks_.push_back(std::move(hook));
}

void Context::adopt_if_forked() {
  const pid_t pid = detail::this_process_id();
  if (owner_pid_.load(std::memory_order_acquire) == pid) return;
  // In a worker process the context's state is the running map's, inherited on purpose.
  if (this_worker_id() >= 0) return;
  // One thread of this process adopts; the others wait for it. A thread of a process this one was
  // forked from that was adopting does not exist here: its mark is taken over.
  for (;;) {
    pid_t adopter = adopting_pid_.load(std::memory_order_acquire);
    if (owner_pid_.load(std::memory_order_acquire) == pid) return;
    if (adopter == pid) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      continue;
    }
    if (adopting_pid_.compare_exchange_weak(adopter, pid, std::memory_order_acq_rel)) break;
  }
  try {
    // The parent's maps do not continue here; whoever held the lock at the fork does not exist here.
    new (&map_mutex_) std::recursive_timed_mutex();
    map_holder_.store(0, std::memory_order_relaxed);
    now_serving_.store(next_ticket_.load(std::memory_order_relaxed), std::memory_order_relaxed);  // no queue here
    rebuild_after_fork();
  } catch (...) {
    adopting_pid_.store(0, std::memory_order_release);
    throw;
  }
  owner_pid_.store(pid, std::memory_order_release);
  adopting_pid_.store(0, std::memory_order_release);
}

void Context::run_job(detail::MapJobBase& job, const MapOptions& options) {
  // map holds the turn's lock; the holder's marks name this thread, in its hooks or not, until the
  // map ends (a hook's own map, which takes the lock again, hands them back to the outer map).
  const MapHolder holder(*this);
  const detail::MapHookSequence hooks(hooks_, job);
  // No worker runs while the caller is in its pre_map or post_map hooks: threads they start, and wait
  // for, map as worker 0.
  detail::run_between(
      hooks.size(),
      [&](std::size_t i) {
        const detail::LentWorkerId lend(0);
        hooks[i].pre_map(*this);
      },
      [&] {
        job.set_caller_thread(detail::this_thread_token(), detail::this_process_id());
        if (options.progress) {
          run_with_progress(job, options);
        } else {
          launch(job);
        }
        job.rethrow_interruption();
      },
      [&](std::size_t i) {
        const detail::LentWorkerId lend(0);
        hooks[i].post_map(*this);
      });
  // Nothing more can fail the map: a helper's results are combined now, or not at all (a kernel's own
  // post_map stage runs here, as worker 0's lender too).
  const detail::LentWorkerId lend(0);
  job.combine_results(*this);
}

void Context::run_with_progress(detail::MapJobBase& job, const MapOptions& options) {
  // The counter goes where every worker can reach it: context memory (shared with worker processes).
  const std::shared_ptr<void> memory = allocate(sizeof(std::atomic<std::size_t>));
  auto* done = new (memory.get()) std::atomic<std::size_t>(0);
  job.count_progress_in(done);
  const ProgressScope scope = progress_scope();
  if (!scope.report_here) {
    launch(job);
    return;
  }
  detail::ProgressReport report(*done, job.num_elements(), scope.share_of_elements, options.progress_every,
                                STDERR_FILENO, ::isatty(STDERR_FILENO) == 1);
  launch(job);  // on failure, the report's destructor ends it as failed
  report.finish(true);
}

}  // namespace pasha
