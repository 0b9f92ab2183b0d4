// pasha::ThreadContext: a persistent pool of worker threads, pinned to cores with hwloc.
#ifndef PASHA_CONTEXTS_THREAD_CONTEXT_H_
#define PASHA_CONTEXTS_THREAD_CONTEXT_H_

#include <memory>
#include <string>

#include "contexts/binding.h"
#include "pasha/context.h"

namespace pasha {

// Workers are threads of this process, created on first use and reused by every map; idle workers
// sleep. Worker w is bound to its core before its first kernel call (policy chosen at construction).
// Arrays live on the heap; large ones are first touched by the workers that will process them, so
// their pages land on the workers' NUMA nodes.
//
// map may be called from several threads at once (the maps run one after the other); a map called
// from inside a kernel runs inline in that worker.
class ThreadContext final : public Context {
 public:
  // One worker per physical core this process may run on.
  ThreadContext();
  // Throws std::invalid_argument unless 1 <= num_workers <= kMaxWorkers.
  explicit ThreadContext(int num_workers, Binding binding = Binding::compact);
  ~ThreadContext() override;

  std::string name() const override { return "threads"; }
  // The cpuset worker `worker_id` is bound to, as hwloc prints lists ("0", "2-3").
  std::string binding(int worker_id) const;
  const BindingPlan& binding_plan() const noexcept;

 protected:
  std::shared_ptr<void> allocate(std::size_t bytes) override;
  void launch(detail::Job& job) override;

 private:
  class Pool;
  std::unique_ptr<Pool> pool_;
};

}  // namespace pasha

#endif  // PASHA_CONTEXTS_THREAD_CONTEXT_H_
