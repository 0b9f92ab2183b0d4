#include "conformance/conformance.h"
#include "conformance/pasha_contexts.h"

PASHA_INSTANTIATE_CONFORMANCE_SUITE_FOR_FACTORIES(Processes, process_contexts());
PASHA_INSTANTIATE_CONFORMANCE_SUITE_FOR_FACTORIES(ProcessesForkedSequentially, sequentially_forked_process_contexts());
