// Who the calling thread works for: the worker id of this thread (set while it runs a worker's share)
// and of this process (set in a worker process for all its threads). Internal to pasha; contexts use
// backend::run_worker and backend::enter_worker_process.
#ifndef PASHA_CORE_DETAIL_WORKER_IDENTITY_H_
#define PASHA_CORE_DETAIL_WORKER_IDENTITY_H_

#include <sys/types.h>

#include <cstdint>

namespace pasha::detail {

// Sets this thread's worker id for the lifetime of the scope (backend::run_worker's), restoring the
// previous one after; in a worker process, the process's too (every thread there counts as the worker
// whose share the process runs, numbered as the map's kernels see it).
class WorkerIdScope {
 public:
  explicit WorkerIdScope(int worker_id) noexcept;
  ~WorkerIdScope();
  WorkerIdScope(const WorkerIdScope&) = delete;
  WorkerIdScope& operator=(const WorkerIdScope&) = delete;

 private:
  int previous_;
  int previous_process_;
};

// Marks this process as worker `worker_id`'s process, for every thread in it.
void set_process_worker_id(int worker_id) noexcept;

// The calling thread's Linux thread id (gettid), cached per thread.
pid_t this_thread_id() noexcept;

// A number that identifies the calling thread among the live threads of this process (cheap).
std::uint64_t this_thread_token() noexcept;

}  // namespace pasha::detail

#endif  // PASHA_CORE_DETAIL_WORKER_IDENTITY_H_
