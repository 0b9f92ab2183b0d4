// pasha: parallel map with zero-copy results. The one header to include.
//
//   std::vector<double> inp(100, 1.5);
//   pasha::Array<double> outp = pasha::alloc<double>({100});
//   pasha::map([&](int worker_id, std::size_t index, double value) { outp[index] = 3 * value; }, inp);
//
// Contexts decide where kernels run (SerialContext, ThreadContext, ProcessContext); arrays from a
// context's alloc are shared between its workers and the caller, so kernels write results in place.
// This header stands above what it brings in: the core (pasha/core/), the contexts (contexts/) and
// the built-in adapters for ranges and arrays (functors/sequence, functors/ndarray). The core knows
// none of them.
#ifndef PASHA_PASHA_H_
#define PASHA_PASHA_H_

#include "contexts/processes/process_context.h"
#include "contexts/serial/serial_context.h"
#include "contexts/threads/thread_context.h"
#include "functors/ndarray/ndarray.h"
#include "functors/sequence/sequence.h"
#include "pasha/core/array.h"
#include "pasha/core/context.h"
#include "pasha/core/errors.h"
#include "pasha/core/functor.h"
#include "pasha/core/helpers.h"
#include "pasha/core/hooks.h"
#include "pasha/core/options.h"
#include "pasha/default_context.h"

#endif  // PASHA_PASHA_H_
