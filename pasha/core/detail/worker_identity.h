// Who the calling thread works for: the worker id of this thread (set while it runs a worker's share)
// and of this process (set in a worker process for all its threads). Internal to pasha; contexts use
// backend::run_worker and backend::enter_worker_process.
#ifndef PASHA_CORE_DETAIL_WORKER_IDENTITY_H_
#define PASHA_CORE_DETAIL_WORKER_IDENTITY_H_

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

namespace pasha::detail {

// Threads that a kernel starts count as its worker (Context::map): each thread that lends a worker id
// to the threads it starts (a worker's share, a WorkerScope, a map's pre_map or post_map hooks), or
// that was started by such a thread, has a lineage. A thread started while its starter lent an id
// works as that id for as long as that same lending lasts (the starter's share, say), and as nothing
// after it: a pool thread started in one map is not taken for a worker of the next.
struct ThreadLineage {
  // (generation << 16) | (worker id + 1) while this thread lends an id; 0 when it lends none. Each
  // lending has a generation of its own, so that it is never taken for an earlier one.
  std::atomic<std::uint64_t> lending{0};
  std::uint64_t next_generation = 0;       // this thread's own
  std::shared_ptr<ThreadLineage> parent;   // the thread that started this one, when it had a lineage
  std::uint64_t parent_lending = 0;        // the parent's lending when it started this one
};

// What a new thread needs to know of the thread starting it: null when that one has no lineage.
struct ThreadBirth {
  std::shared_ptr<ThreadLineage> parent;
  std::uint64_t parent_lending = 0;
};
// In the starting thread.
ThreadBirth birth_of_new_thread() noexcept;
// In the new thread, first thing.
void begin_thread(ThreadBirth birth) noexcept;
// The worker id the calling thread works as through the thread that started it (and so on up), or -1.
int inherited_worker_id() noexcept;

// For pasha's pthread_create: whether any birth waits for its thread to look it up, and create() (the
// real pthread_create, storing the new thread in *thread) under the lock the new thread looks its
// birth up with, noting `birth` for it (or erasing a stale note under its pthread_t).
bool births_noted() noexcept;
int create_noting_birth(ThreadBirth birth, const std::function<int()>& create, pthread_t* thread);
// In a new process (fork), first thing: the notes and their lock are the parent's.
void forget_births_in_new_process() noexcept;

// Lends `worker_id` to the threads the calling thread starts while the scope lives.
class LentWorkerId {
 public:
  explicit LentWorkerId(int worker_id) noexcept;
  ~LentWorkerId();
  LentWorkerId(const LentWorkerId&) = delete;
  LentWorkerId& operator=(const LentWorkerId&) = delete;

 private:
  ThreadLineage* lineage_;
  std::uint64_t previous_;
};

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
  LentWorkerId lend_;  // and lends it to the threads it starts
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
