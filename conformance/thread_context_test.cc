#include "conformance/conformance.h"
#include "contexts/thread_context.h"

PASHA_INSTANTIATE_CONFORMANCE_SUITE_FOR_WORKER_COUNTS(Threads, pasha::ThreadContext, 1, 2, 3, 7);
