// Collects the failures of one map's workers when they share the caller's address space, and
// reports the lowest failed worker id. Internal to pasha.
#ifndef PASHA_DETAIL_WORKER_ERRORS_H_
#define PASHA_DETAIL_WORKER_ERRORS_H_

#include <exception>
#include <vector>

#include "pasha/detail/job.h"

namespace pasha::detail {

class WorkerErrors {
 public:
  explicit WorkerErrors(int num_workers) : errors_(static_cast<std::size_t>(num_workers)) {}

  // Runs worker `worker_id` through run_worker; on failure records the exception and cancels the
  // others. Each worker id must be used by one thread only.
  void run(Context& context, Job& job, int worker_id, WorkerControl& control) noexcept {
    try {
      run_worker(context, job, worker_id, control);
    } catch (...) {
      errors_[static_cast<std::size_t>(worker_id)] = std::current_exception();
      control.cancelled.store(true, std::memory_order_relaxed);
    }
  }

  // After all workers have finished: throws WorkerError for the lowest failed worker, if any.
  void rethrow_first() const;

 private:
  std::vector<std::exception_ptr> errors_;
};

}  // namespace pasha::detail

#endif  // PASHA_DETAIL_WORKER_ERRORS_H_
