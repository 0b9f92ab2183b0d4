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

// This process's id and the calling thread's Linux thread id (gettid), cached, so that asking costs
// a load instead of a system call (half a microsecond or more on a VM, several times a map). The
// caches go stale at every fork: a fork() child's (pthread_atfork, registered when pasha loads) and
// a child of pasha's own forks (backend::fork_between_handlers) learn it first thing. A process
// made by a raw clone() that runs neither must not use pasha.
pid_t this_process_id() noexcept;
pid_t this_thread_id() noexcept;
// For backend::fork_between_handlers: in the new process, first thing.
void note_new_process() noexcept;

// A number that identifies the calling thread among the live threads of this process (cheap).
std::uint64_t this_thread_token() noexcept;

}  // namespace pasha::detail

#endif  // PASHA_CORE_DETAIL_WORKER_IDENTITY_H_
