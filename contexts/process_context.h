// pasha::ProcessContext: workers are forked processes that write results into memory shared with the
// caller. For kernels that call libraries which are not thread-safe.
#ifndef PASHA_CONTEXTS_PROCESS_CONTEXT_H_
#define PASHA_CONTEXTS_PROCESS_CONTEXT_H_

#include <memory>
#include <string>

#include "contexts/binding.h"
#include "pasha/context.h"

namespace pasha {

// Each map forks one child per worker that has work; each child runs its share and its hooks and
// leaves with _exit. Arrays are anonymous shared mappings (nothing under /dev/shm), unmapped when the
// last handle goes; kernels write into them in place and the caller sees the writes after map.
class ProcessContext final : public Context {
 public:
  // One worker per physical core this process may run on.
  ProcessContext();
  // Throws std::invalid_argument unless 1 <= num_workers <= kMaxWorkers.
  explicit ProcessContext(int num_workers, Binding binding = Binding::compact);
  ~ProcessContext() override;

  std::string name() const override { return "processes"; }
  std::string binding(int worker_id) const;
  const BindingPlan& binding_plan() const noexcept;

 protected:
  std::shared_ptr<void> allocate(std::size_t bytes) override;
  void launch(detail::Job& job) override;

 private:
  BindingPlan plan_;
};

}  // namespace pasha

#endif  // PASHA_CONTEXTS_PROCESS_CONTEXT_H_
