#include "python/src/fork_handlers.h"

#include <Python.h>

#include <mutex>

#include "pasha/pasha.h"
#include "python/src/thread_end.h"

namespace pasha::python {
namespace {

// The forking thread's hold on the GIL, from before the fork to after it in the parent. (In the child
// the GIL stays held: the worker runs Python, and leaves with _exit.)
thread_local PyGILState_STATE gil_before_fork;

// h5py's lock (h5py._objects.phil), when h5py is loaded: h5py holds it around each of its HDF5 calls,
// and through the Python callbacks of HDF5's iterations, which run under HDF5's own lock. The fork
// takes it after the GIL (as h5py does; waiting for it lets go of the GIL) and before HDF5's lock
// (which pasha's XFEL reader takes at every fork, functors/xfel/detail/hdf5.cc): without it, the
// fork could wait for HDF5's lock, GIL in hand, while an h5py callback holding that lock waits for
// the GIL. Null when h5py is not loaded (or has no such lock).
thread_local PyObject* h5py_lock_held = nullptr;

// Calls object.name(); false (the error cleared) when that raised.
bool call_method(PyObject* object, const char* name) {
  PyObject* result = PyObject_CallMethod(object, name, nullptr);
  if (result == nullptr) {
    PyErr_Clear();
    return false;
  }
  Py_DECREF(result);
  return true;
}

void take_h5py_lock() {
  PyObject* objects = PyDict_GetItemString(PyImport_GetModuleDict(), "h5py._objects");  // borrowed
  if (objects == nullptr) return;
  PyObject* lock = PyObject_GetAttrString(objects, "phil");
  if (lock == nullptr) {
    PyErr_Clear();
    return;
  }
  if (!call_method(lock, "acquire")) {
    Py_DECREF(lock);
    return;
  }
  h5py_lock_held = lock;
}

void let_go_of_h5py_lock() {
  if (h5py_lock_held == nullptr) return;
  call_method(h5py_lock_held, "release");
  Py_CLEAR(h5py_lock_held);
}

// Each runs Python: a thread the exiting interpreter ends there stops for good (thread_end.h).
void before_fork() {
  unless_thread_ended([] {
    if (interpreter_is_exiting()) stop_this_thread_for_good();  // no GIL to be had any more
    gil_before_fork = PyGILState_Ensure();
    // (Python's stdout and stderr are not flushed here: a worker gets streams of its own and never
    // writes what the caller had buffered, pasha/_fork.py. A flush here, by a thread the exiting
    // interpreter ends while it holds a stream's lock, would leave that lock to the interpreter's own
    // last flush: a fatal error.)
    if (!interpreter_is_exiting()) take_h5py_lock();
    PyOS_BeforeFork();
  });
}

void after_fork_in_parent() {
  unless_thread_ended([] {
    PyOS_AfterFork_Parent();
    let_go_of_h5py_lock();
    PyGILState_Release(gil_before_fork);
  });
}

// A worker's own stdout and stderr (pasha/_fork.py): the copies the fork made may hold what other
// threads of the caller wrote but had not flushed, and a lock such a thread held.
void give_worker_its_own_streams() {
  PyObject* fork_module = PyImport_ImportModule("pasha._fork");
  PyObject* result = fork_module != nullptr ? PyObject_CallMethod(fork_module, "after_fork_in_worker", nullptr) : nullptr;
  if (result == nullptr) PyErr_Clear();  // the worker keeps the streams it has
  Py_XDECREF(result);
  Py_XDECREF(fork_module);
}

void after_fork_in_child() {
  unless_thread_ended([] {
    PyOS_AfterFork_Child();
    let_go_of_h5py_lock();  // h5py's lock knows its owner by pthread_t, which the forking thread keeps here
    give_worker_its_own_streams();
  });
}

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
