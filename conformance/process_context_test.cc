#include "conformance/conformance.h"
#include "contexts/process_context.h"

PASHA_INSTANTIATE_CONFORMANCE_SUITE_FOR_WORKER_COUNTS(Processes, pasha::ProcessContext, 1, 2, 3, 7);
