// pasha: parallel map with zero-copy results. The one header to include.
//
//   std::vector<double> inp(100, 1.5);
//   pasha::Array<double> outp = pasha::alloc<double>({100});
//   pasha::map([&](int worker_id, std::size_t index, double value) { outp[index] = 3 * value; }, inp);
//
// Contexts decide where kernels run (SerialContext, ThreadContext, ProcessContext); arrays from a
// context's alloc are shared between its workers and the caller, so kernels write results in place.
// This header stands above the contexts (contexts/) that it brings in; the core it builds on
// (pasha/context.h and what it includes) knows none of them.
#ifndef PASHA_PASHA_H_
#define PASHA_PASHA_H_

#include "contexts/process_context.h"
#include "contexts/serial_context.h"
#include "contexts/thread_context.h"
#include "pasha/array.h"
#include "pasha/context.h"
#include "pasha/default_context.h"
#include "pasha/errors.h"
#include "pasha/functor.h"
#include "pasha/helpers.h"
#include "pasha/hooks.h"
#include "pasha/ndarray.h"
#include "pasha/options.h"
#include "pasha/sequence.h"

#endif  // PASHA_PASHA_H_
