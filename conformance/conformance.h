// The pasha conformance suite: what every pasha::Context must do, written once and run against each
// context with one line.
//
// To check a context of your own, depend on "@pasha//conformance:suite" from a cc_test and write:
//
//   #include "conformance/conformance.h"
//   PASHA_INSTANTIATE_CONFORMANCE_SUITE(MyContext4,
//                                       [] { return std::make_shared<MyContext>(4); });
//
// The factory is called once per test, so each test gets a fresh context. Kernels in the suite report
// what they saw only through arrays from the context's own alloc, so the suite also works for contexts
// whose workers are separate processes.
#ifndef PASHA_CONFORMANCE_CONFORMANCE_H_
#define PASHA_CONFORMANCE_CONFORMANCE_H_

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>

#include "conformance/context_factory.h"
#include "pasha/core/context.h"

namespace pasha::conformance {

class ContextConformance : public ::testing::TestWithParam<ContextFactory> {
 protected:
  void SetUp() override;
  Context& context() { return *context_; }

 private:
  std::shared_ptr<Context> context_;
};

// What a context driven by one caller must also do (the helpers that combine results, progress of
// functors that are not indexed). A context of several callers (the ranks of an MpiContext), for which
// these do not apply, skips them, saying why.
class SingleCallerConformance : public ContextConformance {
 protected:
  void SetUp() override;
};

}  // namespace pasha::conformance

// Instantiates the whole suite for the contexts the factories make; `prefix` names the instantiation.
// Use at global namespace scope.
#define PASHA_INSTANTIATE_CONFORMANCE_SUITE(prefix, ...)                                                 \
  namespace pasha::conformance {                                                                        \
  INSTANTIATE_TEST_SUITE_P(prefix, ContextConformance, ::testing::Values(ContextFactory(__VA_ARGS__)),      \
                           ContextName{});                                                              \
  INSTANTIATE_TEST_SUITE_P(prefix, SingleCallerConformance, ::testing::Values(ContextFactory(__VA_ARGS__)), \
                           ContextName{});                                                              \
  }

// Instantiates the suite once per worker count, for a context constructible from an int.
// Use at global namespace scope.
#define PASHA_INSTANTIATE_CONFORMANCE_SUITE_FOR_WORKER_COUNTS(prefix, ContextType, ...)                   \
  namespace pasha::conformance {                                                                          \
  INSTANTIATE_TEST_SUITE_P(prefix, ContextConformance,                                                    \
                           ::testing::ValuesIn(factories_for_worker_counts<ContextType>({__VA_ARGS__})), \
                           ContextName{});                                                                \
  INSTANTIATE_TEST_SUITE_P(prefix, SingleCallerConformance,                                               \
                           ::testing::ValuesIn(factories_for_worker_counts<ContextType>({__VA_ARGS__})), \
                           ContextName{});                                                                \
  }

// Instantiates the suite for each factory of a std::vector<ContextFactory>. Use at global namespace
// scope.
#define PASHA_INSTANTIATE_CONFORMANCE_SUITE_FOR_FACTORIES(prefix, factories)                              \
  namespace pasha::conformance {                                                                          \
  INSTANTIATE_TEST_SUITE_P(prefix, ContextConformance, ::testing::ValuesIn(factories), ContextName{});    \
  INSTANTIATE_TEST_SUITE_P(prefix, SingleCallerConformance, ::testing::ValuesIn(factories), ContextName{}); \
  }

#endif  // PASHA_CONFORMANCE_CONFORMANCE_H_
