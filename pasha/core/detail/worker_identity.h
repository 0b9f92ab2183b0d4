// Who the calling thread works for: the worker id of this thread (set while it runs a worker's share)
// and of this process (set in a worker process for all its threads). Internal to pasha; contexts use
// backend::run_worker and backend::enter_worker_process.
#ifndef PASHA_CORE_DETAIL_WORKER_IDENTITY_H_
#define PASHA_CORE_DETAIL_WORKER_IDENTITY_H_

#include <sys/types.h>

namespace pasha::detail {

// Sets this thread's worker id for the lifetime of the scope, restoring the previous one after.
class WorkerIdScope {
 public:
  explicit WorkerIdScope(int worker_id) noexcept;
  ~WorkerIdScope();
  WorkerIdScope(const WorkerIdScope&) = delete;
  WorkerIdScope& operator=(const WorkerIdScope&) = delete;

 private:
  int previous_;
};

// Marks this process as worker `worker_id`'s process, for every thread in it.
void set_process_worker_id(int worker_id) noexcept;

// The calling thread's Linux thread id (gettid), cached per thread.
pid_t this_thread_id() noexcept;

}  // namespace pasha::detail

#endif  // PASHA_CORE_DETAIL_WORKER_IDENTITY_H_
