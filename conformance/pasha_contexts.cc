#include "conformance/pasha_contexts.h"

#include <memory>

#include "pasha/pasha.h"

namespace pasha::conformance {

std::vector<ContextFactory> serial_contexts() {
  return {[] { return std::make_shared<SerialContext>(); }};
}

std::vector<ContextFactory> thread_contexts() {
  return factories_for_worker_counts<ThreadContext>(kWorkerCounts);
}

std::vector<ContextFactory> process_contexts() {
  return factories_for_worker_counts<ProcessContext>(kWorkerCounts);
}

std::vector<ContextFactory> sequentially_forked_process_contexts() {
  std::vector<ContextFactory> factories;
  for (int n : kWorkerCounts) {
    factories.push_back([n] { return std::make_shared<ProcessContext>(n, Binding::compact, ForkMode::sequential); });
  }
  return factories;
}

std::vector<ContextFactory> pasha_contexts() {
  std::vector<ContextFactory> all = serial_contexts();
  for (auto&& kind : {thread_contexts(), process_contexts()}) all.insert(all.end(), kind.begin(), kind.end());
  return all;
}

std::vector<ContextFactory> one_context_of_each_kind() {
  return {
      [] { return std::make_shared<SerialContext>(); },
      [] { return std::make_shared<ThreadContext>(3); },
      [] { return std::make_shared<ProcessContext>(2); },
  };
}

std::vector<std::string> context_kind_names() { return {"serial", "threads", "processes"}; }

}  // namespace pasha::conformance
