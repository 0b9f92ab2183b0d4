#include "pasha/context.h"

#include <stdexcept>
#include <string>

namespace pasha {

int checked_num_workers(int num_workers) {
  if (num_workers < 1 || num_workers > kMaxWorkers) {
    throw std::invalid_argument("pasha: num_workers must be between 1 and " + std::to_string(kMaxWorkers) +
                                ", got " + std::to_string(num_workers));
  }
  return num_workers;
}

Context::Context(int num_workers) : num_workers_(checked_num_workers(num_workers)) {}

Context::~Context() = default;

void Context::add_hook(std::shared_ptr<MapHook> hook) {
  if (!hook) throw std::invalid_argument("pasha: add_hook got a null hook");
  hooks_.push_back(std::move(hook));
}

void Context::call_pre_worker_hooks(int worker_id) {
  for (auto& hook : hooks_) hook->pre_worker(*this, worker_id);
}

void Context::call_post_worker_hooks(int worker_id) {
  for (auto& hook : hooks_) hook->post_worker(*this, worker_id);
}

void Context::run_job(detail::Job& job) {
  std::lock_guard lock(map_mutex_);
  for (auto& hook : hooks_) hook->pre_map(*this);
  try {
    launch(job);
  } catch (...) {
    try {
      for (auto& hook : hooks_) hook->post_map(*this);
    } catch (...) {
      // The map's own error is the one to report.
    }
    throw;
  }
  for (auto& hook : hooks_) hook->post_map(*this);
}

namespace detail {

namespace {
thread_local bool this_thread_is_worker = false;
}  // namespace

bool in_worker() noexcept { return this_thread_is_worker; }

InWorkerScope::InWorkerScope() noexcept : previous_(this_thread_is_worker) { this_thread_is_worker = true; }
InWorkerScope::~InWorkerScope() { this_thread_is_worker = previous_; }

void run_worker(Context& context, Job& job, int worker_id, WorkerControl& control) {
  InWorkerScope in_worker;
  context.call_pre_worker_hooks(worker_id);
  job.run(worker_id, control);
  context.call_post_worker_hooks(worker_id);
}

}  // namespace detail
}  // namespace pasha
