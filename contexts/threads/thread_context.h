// pasha::ThreadContext: a persistent pool of worker threads, pinned to cores with hwloc.
#ifndef PASHA_CONTEXTS_THREADS_THREAD_CONTEXT_H_
#define PASHA_CONTEXTS_THREADS_THREAD_CONTEXT_H_

#include <memory>
#include <string>

#include "contexts/common/binding.h"
#include "pasha/core/backend.h"

namespace pasha {

// Workers are threads of this process, created on the first map and reused by every later map; an
// idle worker watches for the next map for about 0.1 ms (spinning, then yielding), then sleeps, so an
// idle context costs no CPU time. A map costs a wake-up and a join, not thread creation. Destroying
// the context joins the threads.
//
// Worker 0 is the thread that calls map: it runs worker 0's share itself (saving a wake-up) and pasha
// never re-binds it, so it runs wherever the caller's thread may run. Workers 1 .. n-1 are pool
// threads, each bound to its cpuset in binding_plan() (policy chosen at construction) before its
// first kernel call; if the OS refuses a binding, that worker fails the map with a WorkerError.
// binding(0) is the cpuset the plan reserves for worker 0 (no pool thread is bound there unless the
// workers outnumber the cores).
//
// Arrays live on the heap (arrays of 1 MiB and more in mappings of their own, with transparent huge
// pages from 2 MiB: pasha/core/backend.h). FirstTouch says who first touches a new array of 4 MiB or
// more: by default its workers, each the part a static map would give it, so that pages land on the
// workers' NUMA nodes, when the workers sit on more than one NUMA node; on one node nobody does (the
// kernels' first writes do, as with numpy's arrays). Never for Binding::none, nor when alloc is
// called from inside a kernel.
//
// map may be called from several threads at once (the maps run one after the other); a map called
// from inside a kernel runs inline in that worker.
//
// In a process forked from the one that made the context, the context starts a new pool of its own
// on its first map there (the old pool's threads exist only in the parent).
enum class FirstTouch {
  numa_nodes,  // the workers touch a new array first when they sit on more than one NUMA node
  always,      // the workers touch a new array first (when bound)
  never,       // the kernels' first writes touch it
};
// "numa", "always" or "never".
std::string to_string(FirstTouch first_touch);
// The choice named by to_string; throws std::invalid_argument naming any other name.
FirstTouch parse_first_touch(std::string_view name);

class ThreadContext final : public BoundContext {
 public:
  // One worker per physical core this process may run on.
  ThreadContext();
  // Throws std::invalid_argument unless 1 <= num_workers <= kMaxWorkers.
  explicit ThreadContext(int num_workers, Binding binding = Binding::compact,
                         FirstTouch first_touch = FirstTouch::numa_nodes);
  ~ThreadContext() override;

  std::string name() const override { return "threads"; }

 protected:
  std::shared_ptr<void> allocate(std::size_t bytes) override;
  bool allocates_zeros(std::size_t bytes) const override;
  void launch(backend::Job& job) override;
  void rebuild_after_fork() override;

 private:
  class Pool;
  std::unique_ptr<Pool> pool_;
  bool workers_touch_first_;
};

}  // namespace pasha

#endif  // PASHA_CONTEXTS_THREADS_THREAD_CONTEXT_H_
