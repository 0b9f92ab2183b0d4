// What pasha does when the exiting interpreter ends one of its threads. Internal to the `pasha` Python
// package.
//
// While CPython finalises (before 3.14), a thread that waits for the GIL is ended with pthread_exit,
// whose forced unwinding would run through pasha's and pybind11's frames without the GIL: destructors
// that touch Python objects, catch blocks that must rethrow, noexcept frames that call std::terminate.
// A thread ended that way inside a call pasha makes into Python (or while taking the GIL) stops there
// instead, for good, as CPython 3.14 stops such threads: it holds no GIL, runs nothing more, and ends
// with the process, which is exiting.
#ifndef PASHA_PYTHON_SRC_THREAD_END_H_
#define PASHA_PYTHON_SRC_THREAD_END_H_

#include <cxxabi.h>

#include <utility>

namespace pasha::python {

// Whether the interpreter is exiting, or has finished (Py_IsFinalizing: a load, safe without the GIL).
bool interpreter_is_exiting() noexcept;

// Blocks the calling thread until the process ends.
[[noreturn]] void stop_this_thread_for_good() noexcept;

// call(), or, if the interpreter ends this thread during it, stop_this_thread_for_good().
template <class Call>
decltype(auto) unless_thread_ended(Call&& call) {
  try {
    return std::forward<Call>(call)();
  } catch (const abi::__forced_unwind&) {
    stop_this_thread_for_good();
  }
}

}  // namespace pasha::python

#endif  // PASHA_PYTHON_SRC_THREAD_END_H_
