// The contexts pasha's own test suites run against: one list, so that every suite checks the same
// contexts and worker counts.
#ifndef PASHA_CONFORMANCE_PASHA_CONTEXTS_H_
#define PASHA_CONFORMANCE_PASHA_CONTEXTS_H_

#include <string>
#include <vector>

#include "conformance/context_factory.h"

namespace pasha::conformance {

// The worker counts thread and process contexts are checked with: one, two, an odd count, and more
// workers than this 2-core machine has cores.
inline constexpr int kWorkerCounts[] = {1, 2, 3, 7};

// The serial context.
std::vector<ContextFactory> serial_contexts();
// ThreadContext with each of kWorkerCounts.
std::vector<ContextFactory> thread_contexts();
// ProcessContext with each of kWorkerCounts (workers started in a tree of forks, the default).
std::vector<ContextFactory> process_contexts();
// ProcessContext with each of kWorkerCounts, every worker forked by the caller (ForkMode::sequential).
std::vector<ContextFactory> sequentially_forked_process_contexts();
// All of the above, serial first.
std::vector<ContextFactory> pasha_contexts();
// One context of each kind, for long-running tests: serial, threads (3), processes (2).
std::vector<ContextFactory> one_context_of_each_kind();
// The names make_context accepts: "serial", "threads", "processes".
std::vector<std::string> context_kind_names();

}  // namespace pasha::conformance

#endif  // PASHA_CONFORMANCE_PASHA_CONTEXTS_H_
