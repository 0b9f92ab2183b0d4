#include "conformance/conformance.h"
#include "conformance/pasha_contexts.h"

PASHA_INSTANTIATE_CONFORMANCE_SUITE_FOR_FACTORIES(Threads, thread_contexts());
