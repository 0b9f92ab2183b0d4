#include "python/src/thread_end.h"

#include <Python.h>

#include <unistd.h>

namespace pasha::python {

bool interpreter_is_exiting() noexcept {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

void stop_this_thread_for_good() noexcept {
  for (;;) pause();
}

}  // namespace pasha::python
