#include "pasha/context.h"

#include <unistd.h>

#include <exception>
#include <new>
#include <stdexcept>
#include <string>

#include "pasha/fork_safe_mutex.h"

namespace pasha {
namespace {

thread_local int current_worker_id = -1;

// Serialises adopt_if_forked across the threads of a forked child.
ForkSafeMutex& adoption_mutex() {
  static ForkSafeMutex mutex;
  return mutex;
}

// Calls post of every hook in [0, started), last first, keeping the first error in `error`.
template <class Post>
void unwind_hooks(const std::vector<std::shared_ptr<MapHook>>& hooks, std::size_t started, std::exception_ptr& error,
                  Post&& post) noexcept {
  while (started-- > 0) {
    try {
      post(*hooks[started]);
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
}

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

void Context::run_job(backend::Job& job) {
  adopt_if_forked();
  std::lock_guard lock(map_mutex_);
  std::size_t started = 0;
  std::exception_ptr error;
  try {
    for (; started < hooks_.size(); ++started) hooks_[started]->pre_map(*this);
    launch(job);
  } catch (...) {
    error = std::current_exception();
  }
  unwind_hooks(hooks_, started, error, [&](MapHook& hook) { hook.post_map(*this); });
  if (error) std::rethrow_exception(error);
}

namespace backend {

void run_worker(Context& context, Job& job, int worker_id, WorkerControl& control) {
  const detail::WorkerIdScope scope(worker_id);
  const auto& hooks = context.hooks_;
  std::size_t started = 0;
  std::exception_ptr error;
  try {
    for (; started < hooks.size(); ++started) hooks[started]->pre_worker(context, worker_id);
    job.run(worker_id, control);
  } catch (...) {
    error = std::current_exception();
  }
  unwind_hooks(hooks, started, error, [&](MapHook& hook) { hook.post_worker(context, worker_id); });
  if (error) std::rethrow_exception(error);
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
