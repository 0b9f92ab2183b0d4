// pasha::ProcessContext: workers are forked processes that write results into memory shared with the
// caller. For kernels that call libraries which are not thread-safe.
#ifndef PASHA_CONTEXTS_PROCESS_CONTEXT_H_
#define PASHA_CONTEXTS_PROCESS_CONTEXT_H_

#include <cstddef>
#include <memory>
#include <string>

#include "contexts/binding.h"
#include "pasha/backend.h"

namespace pasha {

// Each map forks one child per worker that has work; each child is bound to its worker's cpuset, runs
// its share between its pre_worker and post_worker hooks, and leaves with _exit (no atexit handlers,
// no static destructors; stdout and stderr are flushed). The caller's stdio buffers are flushed before
// the fork, so nothing buffered before a map is printed twice.
//
// Memory: arrays are anonymous shared mappings (nothing under /dev/shm, nothing outlives the process),
// unmapped when the last handle goes. Kernels write into them in place and the caller sees the writes
// once map returns. Any other memory a kernel writes (captured variables, globals, the heap) is the
// child's private copy and is lost when the child exits. alloc throws a std::bad_alloc naming the size
// and the OS's reason when the mapping cannot be had. An array allocated inside a kernel is private to
// that worker process.
//
// Cost: a forked child starts with no page-table entries for shared mappings, so each worker first
// maps in (MADV_POPULATE_READ) its proportional slice of every live array of 256 KiB or more of this
// context (worker w of k takes bytes [w/k, (w+1)/k) of each), for the pages that exist: one system
// call instead of a page fault per 4 KiB page, and pages never touched are not allocated. This is done
// for maps over 4096 elements or more (or whose size the functor does not tell), whether or not the
// kernel uses the array, so such maps pay a little (well under a microsecond per resident page,
// spread over the workers) for each large array of the context that is alive: let go of arrays you
// no longer need. Smaller maps skip it and leave the few pages they touch to page faults. Memory that is not from alloc
// (a std::vector input, say) is copied on write: fork copies its page tables, and the caller's next
// write to each page faults once.
//
// Failures: a kernel (or hook) exception in a child reaches the caller as pasha::WorkerError with the
// worker id and the original message; the nested pasha::RemoteError carries the exception's type name.
// A child killed by a signal or exiting early (exit(), _exit()) gives a WorkerError naming the signal
// ("SIGSEGV") or the exit status. On the first failure the cancel flag is set, the other children get
// a moment to stop on their own and are then killed with SIGKILL; all are reaped before map returns
// (children killed by pasha are not failures). Children die with the caller's thread that forked them
// (PR_SET_PDEATHSIG). pasha installs no signal handlers and never reaps processes it did not fork;
// each running worker holds one file descriptor (a pidfd), closed before map returns.
//
// What kernels must not do (fork copies only the calling thread):
//  - rely on threads started before the map (they do not exist in the child), or on locks another
//    thread may hold at fork time (they stay locked in the child forever; glibc's malloc and stdio
//    list locks are reset by fork, user mutexes are not). Do not run maps of a pasha::ThreadContext,
//    or anything else that takes locks, in other threads while a ProcessContext forks if kernels use
//    the same locks.
//  - use file handles, HDF5 ids, sockets or library sessions opened before the map as if they were
//    their own: their kernel-side state is shared with the caller (file offsets, locks). Reopen them
//    in the kernel or in a pre_worker hook.
//  - expect writes outside pasha arrays to reach the caller.
// ProcessContext itself never creates threads.
//
// map and alloc may be called from several threads at once (maps on one context run one after the
// other); a map called from inside a kernel runs inline in that worker process.
class ProcessContext final : public BoundContext {
 public:
  // One worker per physical core this process may run on.
  ProcessContext();
  // Throws std::invalid_argument unless 1 <= num_workers <= kMaxWorkers.
  explicit ProcessContext(int num_workers, Binding binding = Binding::compact);
  ~ProcessContext() override;

  std::string name() const override { return "processes"; }

  // The live arrays of a context, and the block its workers share; internal.
  class SharedMappings;
  struct ProcessControl;

 protected:
  std::shared_ptr<void> allocate(std::size_t bytes) override;
  void launch(backend::Job& job) override;

 private:
  // The live arrays of this context, shared with their deleters (which may outlive the context).
  std::shared_ptr<SharedMappings> mappings_;
  // One shared mapping reused by every map: the workers' WorkerControl and their status records.
  std::shared_ptr<void> control_memory_;
  ProcessControl* control_ = nullptr;
};

}  // namespace pasha

#endif  // PASHA_CONTEXTS_PROCESS_CONTEXT_H_
