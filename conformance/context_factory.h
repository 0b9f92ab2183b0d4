// How tests get contexts: a factory per context under test, and readable test names for them.
#ifndef PASHA_CONFORMANCE_CONTEXT_FACTORY_H_
#define PASHA_CONFORMANCE_CONTEXT_FACTORY_H_

#include <gtest/gtest.h>

#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "pasha/core/context.h"

namespace pasha::conformance {

// Makes a fresh context; called once per test.
using ContextFactory = std::function<std::shared_ptr<Context>()>;

// Names each instantiation after its context: "threads_3_workers".
struct ContextName {
  std::string operator()(const ::testing::TestParamInfo<ContextFactory>& info) const;
};

// One factory per worker count, for a context constructible from an int.
template <class ContextType, class Counts = std::initializer_list<int>>
std::vector<ContextFactory> factories_for_worker_counts(const Counts& counts) {
  std::vector<ContextFactory> factories;
  for (int n : counts) factories.push_back([n] { return std::make_shared<ContextType>(n); });
  return factories;
}

}  // namespace pasha::conformance

#endif  // PASHA_CONFORMANCE_CONTEXT_FACTORY_H_
