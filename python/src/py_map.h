// One map of a Python kernel on the C++ engine: the state its caller, its hooks and its workers share
// (PyMap), the kernel as the engine calls it (PyKernel), the Python MapHooks as C++ hooks, and the
// collections a Python map walks (a sequence by index, or a Python functor's shares). Internal to the
// `pasha` Python package.
//
// The GIL: the caller releases it for the whole C++ map; a worker takes it for each chunk of elements
// it walks and for each hook it runs, as a Python thread would, so other threads run Python (and
// numpy without the GIL) in between.
#ifndef PASHA_PYTHON_SRC_PY_MAP_H_
#define PASHA_PYTHON_SRC_PY_MAP_H_

#include <pybind11/pybind11.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pasha/core/backend.h"
#include "pasha/pasha.h"
#include "python/src/thread_end.h"

namespace pasha::python {

namespace py = pybind11;

class PyHook;

// pybind11's gil_scoped_release, with a destructor that may throw: when the interpreter is finalising,
// a daemon thread taking the GIL back is ended with pthread_exit, whose unwinding must be let through
// (pybind11's dispatcher rethrows it); through a noexcept destructor it would call std::terminate.
// A thread the exiting interpreter ends as it takes the GIL back stops there (python/src/thread_end.h).
class GilReleased {
 public:
  GilReleased() : state_(PyEval_SaveThread()) {}
  ~GilReleased() noexcept(false) {
    unless_thread_ended([this] { PyEval_RestoreThread(state_); });
  }
  GilReleased(const GilReleased&) = delete;
  GilReleased& operator=(const GilReleased&) = delete;

 private:
  PyThreadState* state_;
};

// pybind11's gil_scoped_acquire for pasha's threads, safe when the interpreter ends the thread while it
// holds this (a daemon thread at exit whose kernel waits for the GIL again: pthread_exit's unwinding
// passes through here). Then the thread no longer holds the GIL, and gives back nothing.
class GilHeld {
 public:
  GilHeld() : state_(unless_thread_ended([] {
    // Once the interpreter exits, the GIL is not to be had (after Py_FinalizeEx, PyGILState_Ensure
    // would touch what it freed): this thread stops here for good.
    if (interpreter_is_exiting()) stop_this_thread_for_good();
    return PyGILState_Ensure();
  })) {}
  ~GilHeld() {
    if (holds_the_gil()) PyGILState_Release(state_);
  }
  GilHeld(const GilHeld&) = delete;
  GilHeld& operator=(const GilHeld&) = delete;

 private:
  // Whether this thread holds the GIL (PyGILState_Check says so of every thread while the interpreter
  // finalises): the state running Python now (this thread's, or, before 3.12, any thread's) is this
  // thread's own.
  static bool holds_the_gil() noexcept {
#if PY_VERSION_HEX >= 0x030D0000
    PyThreadState* const running = PyThreadState_GetUnchecked();
#else
    PyThreadState* const running = _PyThreadState_UncheckedGet();
#endif
    return running != nullptr && running == PyGILState_GetThisThreadState();
  }

  PyGILState_STATE state_;
};

// The traceback an exception was raised with, or None (an exception set from C++ has none).
inline py::object traceback_of(const py::error_already_set& error) {
  return error.trace() ? py::reinterpret_borrow<py::object>(error.trace()) : py::none();
}

// What one map shares: the Python context its hooks are given, the kernel as the hooks have changed it
// (for the whole map, and per worker), which workers failed, and the caller's process.
class PyMap {
 public:
  PyMap(py::object context, py::object kernel, int num_workers);

  const py::object& context() const noexcept { return context_; }
  // The function worker `worker` calls: the one its pre_worker hooks left, or the map's.
  PyObject* function_of(int worker) const noexcept {
    const py::object& own = worker_functions_[slot(worker)];
    return own ? own.ptr() : function_.ptr();
  }
  py::object& worker_function(int worker) { return worker_functions_[slot(worker)]; }
  py::object& function() noexcept { return function_; }

  // The Python exception that is set (PyErr_Occurred) as the calling worker's failure: marks the worker
  // failed (its post_worker hooks then do not run) and throws it, as itself (py::error_already_set) in
  // the caller's process, or, in a worker process, as a pasha::ErrorWithPayload carrying what the
  // caller needs to raise it again (pasha._errors.capture), the one way the engine carries a worker
  // process's failure. Call with the GIL held.
  [[noreturn]] void fail() const;
  // When the Python exception that is set is a KeyboardInterrupt raised in a kernel on the thread that
  // called map (Ctrl-C lands there when the caller's own thread runs a share: a serial context, worker
  // 0 of a thread context): takes it for the caller's interruption, as Ctrl-C in the caller's wait
  // is, clears it and makes Python's next signal check raise it, and returns true. The map is then
  // stopped at its next check of the caller, on every rank of an MPI context. Call with the GIL held.
  bool take_as_callers_interruption() const;
  // Whether the calling thread is the one that called map, in the caller's process (no GIL needed, no
  // system call).
  bool on_callers_thread() const noexcept {
    return PyThread_get_thread_ident() == caller_thread_ && backend::this_process_id() == caller_;
  }
  bool worker_failed(int worker) const noexcept { return worker_failed_[slot(worker)] != 0; }

  pid_t caller() const noexcept { return caller_; }

 private:
  // A nested map (one run inline inside a kernel) passes the outer worker's id, which may exceed this
  // context's count; it runs on that worker alone, so id % count is free.
  std::size_t slot(int worker) const noexcept {
    const auto id = static_cast<std::size_t>(worker);
    return id < worker_functions_.size() ? id : id % worker_functions_.size();
  }

  [[noreturn]] void fail_here() const;

  py::object context_;
  py::object function_;
  std::vector<py::object> worker_functions_;
  mutable std::vector<char> worker_failed_;
  pid_t caller_;
  unsigned long caller_thread_;  // PyThread_get_thread_ident() of the thread that called map
};

// The kernel as the engine calls it: function(worker_id, index, value) for the items of a sequence,
// function(worker_id, *entry) for the entries a Python functor's iterate yields. Brings the hooks of
// the map (pasha_add_map_hooks): the worker-output flush first, then one PyHook per Python hook, in the
// order they were attached, which the core runs in its order (pasha/core/hooks.h).
class PyKernel {
 public:
  static constexpr bool pasha_kernel_is_generic = false;

  // An entry a Python functor yielded: the tuple (index, values...).
  struct Entry {
    py::handle tuple;
  };

  PyKernel(PyMap& map, std::vector<pasha::MapHook*> hooks, std::vector<PyHook*> python_hooks)
      : map_(&map), hooks_(std::move(hooks)), python_hooks_(std::move(python_hooks)) {}

  // Called with the GIL held (by the functor that walks the collection).
  void operator()(int worker, std::size_t index, py::handle value) const;
  void operator()(int worker, std::size_t position, const Entry& entry) const;

  void pasha_add_map_hooks(pasha::MapHookList& list) const {
    for (pasha::MapHook* hook : hooks_) list.add(hook);
  }
  // Once the map has succeeded: the Python hooks' post_map stage, last-attached first (the core's order
  // for post_* calls).
  void pasha_prepare_results(pasha::Context&) const;
  void pasha_commit_results() const noexcept {}

 private:
  // Calls `function` with `args` (vectorcall form, one free slot before them); throws what it raises.
  void call(int worker, PyObject* const* args, std::size_t count) const;

  PyMap* map_;
  std::vector<pasha::MapHook*> hooks_;
  std::vector<PyHook*> python_hooks_;
};

// A Python sequence's items by index, sequence[i] for i in [0, length): an indexed functor, so the
// engine may chunk and schedule it (lists, tuples, ranges, numpy arrays and xarray DataArrays along
// their first axis).
class PySequence {
 public:
  PySequence(py::object sequence, std::size_t length, const PyMap& map)
      : sequence_(std::move(sequence)), length_(length), map_(&map) {}

  std::size_t size() const noexcept { return length_; }

  // Not pass-through (pasha/core/functor.h): the engine's visitor looks at the cancel flag before each
  // element, which costs nothing beside a Python call, so that a failure (or Ctrl-C) stops the other
  // workers after their current element.
  template <class Visit>
  void iterate(const pasha::IndexRange& share, Visit&& visit) const {
    GilHeld gil;
    for (std::size_t i = share.begin; i < share.end; ++i) {
      const auto item = py::reinterpret_steal<py::object>(unless_thread_ended(
          [&] { return PySequence_GetItem(sequence_.ptr(), static_cast<Py_ssize_t>(i)); }));
      if (!item) map_->fail();
      if (!visit(i, py::handle(item))) return;
    }
  }

 private:
  py::object sequence_;
  std::size_t length_;
  const PyMap* map_;
};

// A Python functor's shares (from its split, in the caller: a user's Functor subclass splits as it
// likes, EXtra-pasha's API) and what its iterate(share) yields in the worker that takes each share. Not indexed: shares beyond one per worker are handed out to free
// workers, and a failure stops the others at their next element.
class PyShares {
 public:
  PyShares(py::object functor, std::vector<py::object> shares, const PyMap& map)
      : functor_(std::move(functor)), shares_(std::move(shares)), map_(&map) {}

  std::vector<std::size_t> split(int /*num_workers*/) const {
    std::vector<std::size_t> positions(shares_.size());
    for (std::size_t k = 0; k < positions.size(); ++k) positions[k] = k;
    return positions;
  }

  template <class Visit>
  void iterate(std::size_t share, Visit&& visit) const {
    GilHeld gil;
    const py::object entries = iterate_share(share);
    for (std::size_t position = 0;; ++position) {
      const auto entry = py::reinterpret_steal<py::object>(unless_thread_ended([&] { return PyIter_Next(entries.ptr()); }));
      if (!entry) {
        if (PyErr_Occurred() != nullptr) map_->fail();
        return;
      }
      if (!PyTuple_Check(entry.ptr())) not_a_tuple(entry);
      if (!visit(position, PyKernel::Entry{entry})) return;  // the map was cancelled
    }
  }

 private:
  // An iterator over functor.iterate(shares_[share]).
  py::object iterate_share(std::size_t share) const;
  [[noreturn]] void not_a_tuple(const py::object& entry) const;

  py::object functor_;
  std::vector<py::object> shares_;
  const PyMap* map_;
};

// One Python MapHook (EXtra-pasha's pasha.util.MapHook: pre_map(context, function) -> function, ...) of
// a map, as a C++ hook. The core calls a map's hooks in its one order (pasha/core/hooks.h: pre_* in the
// order the hooks were attached, post_* last-attached first); each stage is given the function the call
// before it left and returns the one to go on with. pre_worker and post_worker run in the worker itself.
// A Python post stage runs only when what it follows succeeded (EXtra-pasha's rule): post_worker when
// the worker's hooks and share did, post_map (PyKernel::pasha_prepare_results) when the map did.
class PyHook final : public pasha::MapHook {
 public:
  PyHook(PyMap& map, py::object hook) : map_(map), hook_(std::move(hook)) {}
  void pre_map(pasha::Context&) override;
  void pre_worker(pasha::Context&, int worker_id) override;
  void post_worker(pasha::Context&, int worker_id) override;
  // The post_map stage, for the map's success (PyKernel::pasha_prepare_results).
  void after_success();

 private:
  // hook.<stage>(context, function[, worker_id]): the function to go on with.
  py::object run_stage(const char* stage, const py::object& function, const py::object* worker_id) const;

  PyMap& map_;
  py::object hook_;
};

// The hook every Python map has first: in a worker process, what the worker's Python code printed
// (sys.stdout, sys.stderr) is flushed once its share is over, after every other hook's post_worker.
class WorkerOutput final : public pasha::MapHook {
 public:
  explicit WorkerOutput(const PyMap& map) : map_(map) {}
  void post_worker(pasha::Context&, int worker_id) override;

 private:
  const PyMap& map_;
};

}  // namespace pasha::python

#endif  // PASHA_PYTHON_SRC_PY_MAP_H_
