#include "python/src/fork_handlers.h"

#include <Python.h>

#include <mutex>

#include "pasha/pasha.h"

namespace pasha::python {
namespace {

// The forking thread's hold on the GIL, from before the fork to after it in the parent. (In the child
// the GIL stays held: the worker runs Python, and leaves with _exit.)
thread_local PyGILState_STATE gil_before_fork;

// What Python buffered for stdout and stderr goes out before the fork, with the GIL held so that no
// other thread adds to it in between: a worker never prints the caller's output again.
void flush_python_streams() {
  for (const char* name : {"stdout", "stderr"}) {
    PyObject* stream = PySys_GetObject(name);  // borrowed
    if (stream == nullptr || stream == Py_None) continue;
    PyObject* result = PyObject_CallMethod(stream, "flush", nullptr);
    if (result == nullptr) {
      PyErr_Clear();
    } else {
      Py_DECREF(result);
    }
  }
}

void before_fork() {
  gil_before_fork = PyGILState_Ensure();
  flush_python_streams();
  PyOS_BeforeFork();
}

void after_fork_in_parent() {
  PyOS_AfterFork_Parent();
  PyGILState_Release(gil_before_fork);
}

void after_fork_in_child() { PyOS_AfterFork_Child(); }

}  // namespace

void register_python_fork_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    pasha::add_fork_handlers({.before = before_fork,
                              .after_in_parent = after_fork_in_parent,
                              .after_in_child = after_fork_in_child});
  });
}

}  // namespace pasha::python
