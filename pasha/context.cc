#include "pasha/context.h"

#include <unistd.h>

#include <new>
#include <span>
#include <stdexcept>
#include <string>

#include "pasha/detail/progress.h"
#include "pasha/fork_safe_mutex.h"

namespace pasha {
namespace {

thread_local int current_worker_id = -1;

// Serialises adopt_if_forked across the threads of a forked child.
ForkSafeMutex& adoption_mutex() {
  static ForkSafeMutex mutex;
  return mutex;
}

// The hooks of one map: the context's, then the map's own (a helper's).
class MapHooks {
 public:
  MapHooks(const std::vector<std::shared_ptr<MapHook>>& context_hooks, const backend::Job& job) noexcept
      : context_hooks_(context_hooks), map_hooks_(job.map_hooks()) {}
  std::size_t size() const noexcept { return context_hooks_.size() + map_hooks_.size(); }
  MapHook& operator[](std::size_t i) const noexcept {
    return i < context_hooks_.size() ? *context_hooks_[i] : *map_hooks_[i - context_hooks_.size()];
  }

 private:
  const std::vector<std::shared_ptr<MapHook>>& context_hooks_;
  std::span<MapHook* const> map_hooks_;
};

}  // namespace

int this_worker_id() noexcept { return current_worker_id; }

namespace detail {
WorkerIdScope::WorkerIdScope(int worker_id) noexcept : previous_(current_worker_id) { current_worker_id = worker_id; }
WorkerIdScope::~WorkerIdScope() { current_worker_id = previous_; }
}  // namespace detail

int checked_num_workers(int num_workers) {
  if (num_workers < 1 || num_workers > kMaxWorkers) {
    throw std::invalid_argument("pasha: num_workers must be between 1 and " + std::to_string(kMaxWorkers) +
                                ", got " + std::to_string(num_workers));
  }
  return num_workers;
}

Context::Context(int num_workers) : num_workers_(checked_num_workers(num_workers)), owner_pid_(getpid()) {
  adoption_mutex();  // registers its fork handler before any fork can matter
}

Context::~Context() = default;

void Context::add_hook(std::shared_ptr<MapHook> hook) {
  if (!hook) throw std::invalid_argument("pasha: add_hook got a null hook");
  hooks_.push_back(std::move(hook));
}

void Context::adopt_if_forked() {
  const pid_t pid = getpid();
  if (owner_pid_.load(std::memory_order_acquire) == pid) return;
  std::lock_guard guard(adoption_mutex());
  if (owner_pid_.load(std::memory_order_relaxed) == pid) return;
  // The parent's maps do not continue here; whoever held the lock at the fork does not exist here.
  new (&map_mutex_) std::recursive_mutex();
  rebuild_after_fork();
  owner_pid_.store(pid, std::memory_order_release);
}

void Context::run_job(detail::MapJobBase& job, const MapOptions& options) {
  adopt_if_forked();
  std::lock_guard lock(map_mutex_);
  const MapHooks hooks(hooks_, job);
  detail::run_between(
      hooks.size(), [&](std::size_t i) { hooks[i].pre_map(*this); },
      [&] {
        if (options.progress) {
          run_with_progress(job, options);
        } else {
          launch(job);
        }
        job.after_success(*this);
      },
      [&](std::size_t i) { hooks[i].post_map(*this); });
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
  std::size_t total = job.num_elements();
  if (total != backend::Job::kUnknownSize) {
    total = static_cast<std::size_t>(static_cast<double>(total) * scope.share_of_elements + 0.5);
  }
  detail::ProgressReport report(*done, total, options.progress_every, STDERR_FILENO, ::isatty(STDERR_FILENO) == 1);
  launch(job);  // on failure, the report's destructor ends it as failed
  report.finish(true);
}

namespace backend {

void run_worker(Context& context, Job& job, int worker_id, WorkerControl& control) {
  const detail::WorkerIdScope scope(worker_id);
  const MapHooks hooks(context.hooks_, job);
  detail::run_between(
      hooks.size(), [&](std::size_t i) { hooks[i].pre_worker(context, worker_id); },
      [&] { job.run(worker_id, control); }, [&](std::size_t i) { hooks[i].post_worker(context, worker_id); });
}

void launch(Context& context, Job& job) {
  if (job.num_active_workers() > context.num_workers()) {
    throw std::invalid_argument("pasha::backend::launch: a job of " + std::to_string(job.num_active_workers()) +
                                " workers on a context of " + std::to_string(context.num_workers()));
  }
  context.exclusively([&] { context.launch(job); });
}

std::shared_ptr<void> allocate(Context& context, const ArrayLayout& layout) { return context.allocate_array(layout); }

}  // namespace backend
}  // namespace pasha
