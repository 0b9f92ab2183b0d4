// pasha::ProcessContext: workers are forked processes that write results into memory shared with the
// caller. For kernels that call libraries which are not thread-safe.
#ifndef PASHA_CONTEXTS_PROCESSES_PROCESS_CONTEXT_H_
#define PASHA_CONTEXTS_PROCESSES_PROCESS_CONTEXT_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "contexts/common/binding.h"
#include "pasha/core/backend.h"

namespace pasha {

// How a process map starts its workers.
enum class ForkMode {
  // The caller forks about log2(workers + 1) workers and each worker forks more before running its
  // share, every round doubling the started workers: the caller's critical path is log2 forks, not
  // one fork per worker. Every worker is still a direct child of the caller. The default; maps fall
  // back to `sequential` where the system does not allow it (no clone3, as under some seccomp
  // filters).
  tree,
  // The caller forks every worker itself, one after the other, as a hand-written fork loop does.
  sequential,
};

// Each map starts one process per worker that has work (ForkMode), each bound to its worker's cpuset;
// a worker runs its share between its pre_worker and post_worker hooks and leaves with _exit (no
// atexit handlers, no static destructors).
//
// When map returns: every worker has recorded its share done (or failed, or has died), has exited and
// has been reaped: every write a worker made to the context's arrays is visible, what workers printed
// to stdout and stderr has been written, and no worker process is left holding anything it inherited
// from the caller (files and their locks, sockets, pipes). Workers that finish before every worker of
// the map has started wait until then to exit, so that their exit does not compete with the forks.
//
// Memory: arrays are anonymous shared mappings (nothing under /dev/shm, nothing outlives the
// process), unmapped when the last handle goes. Kernels write into them in place. Any other memory a
// kernel writes (captured variables, globals, the heap) is the child's private copy and is lost when
// the child exits. alloc throws a std::bad_alloc naming the size and the OS's reason when the mapping
// cannot be had. An array allocated inside a kernel is private to that worker process.
//
// Cost: a forked child starts with no page-table entries for shared mappings, so each worker first
// maps in (MADV_POPULATE_READ) its proportional slice of every live array of 256 KiB or more of this
// context (worker w of k takes bytes [w/k, (w+1)/k) of each), for the pages that exist. This is done
// for maps over 4096 elements or more (or whose size the functor does not tell), whether or not the
// kernel uses the array: let go of arrays you no longer need. Memory that is not from alloc (a
// std::vector input, say) is copied on write: fork copies its page tables.
//
// Failures: a kernel (or hook) exception in a child reaches the caller as pasha::WorkerError with the
// worker id and the original message; the nested pasha::RemoteError carries the exception's type name.
// A child killed by a signal or exiting early (exit(), _exit()) gives a WorkerError naming the signal
// ("SIGSEGV") or the exit status; a worker that could not be forked, one naming the OS's reason. On
// the first failure the cancel flag is set; the other workers stop at their next check, and those
// still running their kernel 50 ms later (after 50 ms of CPU time, within 5 s, for one that a loaded
// machine keeps waiting for a core), or their pre_worker/post_worker hooks 5 s later, are killed with
// SIGKILL (children killed by pasha are not failures, and run no more hooks). Children
// die with the caller's thread that started the map (PR_SET_PDEATHSIG). pasha installs no signal
// handlers and never reaps processes it did not fork. The caller gets a pidfd for every worker before
// the worker can run any code of the user's or exit on its own, so a pid is never mistaken for
// another process's.
//
// Output: before forking, the caller flushes stdout and stderr (unless another thread holds a
// stream's lock at that moment) and the C++ standard streams that have buffers of their own (after
// std::ios_base::sync_with_stdio(false)). Each worker discards the stdio output it inherited, so
// nothing the caller buffered is printed twice, and flushes stdout, stderr, std::cout, std::cerr and
// std::clog before it records its share done. Other streams are neither flushed nor written by
// workers.
//
// What kernels must not do (fork copies only the calling thread):
//  - rely on threads started before the map (they do not exist in the child), or on locks another
//    thread of the caller may hold at fork time (they stay locked in the child forever; glibc's
//    malloc and stdio locks, and pasha's own, are made safe across fork; a user's mutexes are not).
//  - use file handles, HDF5 ids, sockets or library sessions opened before the map as if they were
//    their own: their kernel-side state is shared with the caller (file offsets, locks). Reopen them
//    in the kernel or in a pre_worker hook.
//  - expect writes outside pasha arrays to reach the caller.
// ProcessContext itself never creates threads.
//
// A process forked from the caller (the user's own fork()) gets its own control block and eventfd on
// its first map there; arrays allocated before that fork stay shared by both processes.
//
// Forks: every fork (the caller's, and each worker's clone3 in the tree) runs between the fork
// handlers an embedding registered (pasha::add_fork_handlers): the Python package brackets them with
// PyOS_BeforeFork / PyOS_AfterFork_*. Each worker process counts as its worker in every thread
// (backend::enter_worker_process): a map called there, from a kernel or from a thread the kernel
// started, runs inline in that worker process, with its worker id.
//
// map, alloc and wait_for_exited_workers may be called from several threads at once (maps on one
// context run one after the other).
//
// A user's own waitpid(-1) (or a SIGCHLD handler that reaps every child) may take the exit status of
// a worker that died before pasha saw it: its WorkerError then says so, without the signal. Reap only
// your own children (waitpid(pid), pidfds), and do not reap while a map runs.
class ProcessContext final : public BoundContext {
 public:
  // One worker per physical core this process may run on.
  ProcessContext();
  // Throws std::invalid_argument unless 1 <= num_workers <= kMaxWorkers.
  explicit ProcessContext(int num_workers, Binding binding = Binding::compact, ForkMode fork_mode = ForkMode::tree);
  ~ProcessContext() override;

  std::string name() const override { return "processes"; }
  ForkMode fork_mode() const noexcept { return fork_mode_; }

  // Waits for a map running in another thread to end (its workers are reaped before it returns):
  // afterwards this context has no child process and holds no pidfd. Call it before a waitpid(-1) of
  // your own while other threads may map. From inside a kernel (a worker has no workers of this
  // context) it does nothing.
  void wait_for_exited_workers();

  // The state a map shares with its workers, and the workers a map left exiting; internal.
  struct ControlBlock;
  struct Exiting;

 protected:
  std::shared_ptr<void> allocate(std::size_t bytes) override;
  bool allocates_zeros(std::size_t) const override { return true; }  // fresh shared mappings
  void launch(backend::Job& job) override;
  void rebuild_after_fork() override;

 private:
  void make_process_state();
  // wait_for_exited_workers, for a caller that holds the map lock (or is the destructor).
  void reap_exiting_workers() noexcept;

  ForkMode fork_mode_;
  // The live arrays of this context, shared with their deleters (which may outlive the context).
  std::shared_ptr<class SharedMappings> mappings_;
  // One shared mapping reused by every map: the workers' WorkerControl and their records.
  std::shared_ptr<void> control_memory_;
  ControlBlock* control_ = nullptr;
  // Workers signal the caller here (an eventfd) when they have started others or finished.
  int events_ = -1;
  // Workers of the last map that had not exited when it returned.
  std::vector<Exiting> exiting_;
};

}  // namespace pasha

#endif  // PASHA_CONTEXTS_PROCESSES_PROCESS_CONTEXT_H_
