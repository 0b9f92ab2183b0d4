#include "python/src/py_map.h"

#include <unistd.h>

#include <array>
#include <string>

namespace pasha::python {

PyMap::PyMap(py::object context, py::object kernel, int num_workers)
    : context_(std::move(context)),
      function_(std::move(kernel)),
      worker_functions_(static_cast<std::size_t>(num_workers)),
      worker_failed_(static_cast<std::size_t>(num_workers), 0),
      caller_(getpid()),
      caller_thread_(PyThread_get_thread_ident()) {}

bool PyMap::take_as_callers_interruption() const {
  if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt) == 0 || getpid() != caller_ ||
      PyThread_get_thread_ident() != caller_thread_) {
    return false;
  }
  PyErr_Clear();
  PyErr_SetInterrupt();
  return true;
}

void PyMap::fail() const {
  unless_thread_ended([this] { fail_here(); });
  __builtin_unreachable();  // fail_here throws; a thread ended in it stops there
}

void PyMap::fail_here() const {
  py::error_already_set error;
  if (const int worker = pasha::this_worker_id(); worker >= 0) worker_failed_[slot(worker)] = 1;
  if (getpid() == caller_) throw error;  // the caller's process: the exception itself reaches it
  std::string payload;
  std::string message;
  try {
    const py::object errors = py::module_::import("pasha._errors");
    payload = errors.attr("capture")(error.value(), backend::ErrorRecord::kPayloadSize, traceback_of(error))
                  .cast<std::string>();
    message = errors.attr("_message")(error.value()).cast<std::string>();
  } catch (const py::error_already_set&) {
    // The description failed: the caller then rebuilds the error from its type name and message.
    message = error.what();
  }
  const py::handle type = error.type();
  const std::string type_name = py::str(type.attr("__module__")).cast<std::string>() + "." +
                                py::str(type.attr("__qualname__")).cast<std::string>();
  throw pasha::ErrorWithPayload(type_name, message, std::move(payload));
}

void PyKernel::call(int worker, PyObject* const* args, std::size_t count) const {
  PyObject* result = unless_thread_ended([&] {
    return PyObject_Vectorcall(map_->function_of(worker), args, count | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr);
  });
  if (result == nullptr) {
    if (map_->take_as_callers_interruption()) return;
    map_->fail();
  }
  Py_DECREF(result);
}

void PyKernel::operator()(int worker, std::size_t index, py::handle value) const {
  const py::object worker_id = py::int_(worker);
  const py::object position = py::int_(index);
  std::array<PyObject*, 4> args{nullptr, worker_id.ptr(), position.ptr(), value.ptr()};
  call(worker, args.data() + 1, 3);
}

void PyKernel::operator()(int worker, std::size_t, const Entry& entry) const {
  const auto values = static_cast<std::size_t>(PyTuple_GET_SIZE(entry.tuple.ptr()));
  const py::object worker_id = py::int_(worker);
  std::vector<PyObject*> args(values + 2);
  args[1] = worker_id.ptr();
  for (std::size_t k = 0; k < values; ++k) args[k + 2] = PyTuple_GET_ITEM(entry.tuple.ptr(), static_cast<Py_ssize_t>(k));
  call(worker, args.data() + 1, values + 1);
}

void PyKernel::pasha_prepare_results(pasha::Context&) const {
  for (auto hook = python_hooks_.rbegin(); hook != python_hooks_.rend(); ++hook) (*hook)->after_success();
}

py::object PyShares::iterate_share(std::size_t share) const {
  PyObject* iterable =
      unless_thread_ended([&] { return PyObject_CallMethod(functor_.ptr(), "iterate", "O", shares_[share].ptr()); });
  if (iterable == nullptr) map_->fail();
  const auto owned = py::reinterpret_steal<py::object>(iterable);
  PyObject* iterator = unless_thread_ended([&] { return PyObject_GetIter(owned.ptr()); });
  if (iterator == nullptr) map_->fail();
  return py::reinterpret_steal<py::object>(iterator);
}

void PyShares::not_a_tuple(const py::object& entry) const {
  PyErr_Format(PyExc_TypeError, "pasha: %R.iterate(share) must yield tuples (index, value, ...), not %R",
               functor_.ptr(), entry.ptr());
  map_->fail();
}

py::object PyHook::run_stage(const char* stage, const py::object& function, const py::object* worker_id) const {
  PyObject* result = unless_thread_ended([&] {
    return worker_id != nullptr
               ? PyObject_CallMethod(hook_.ptr(), stage, "OOO", map_.context().ptr(), function.ptr(), worker_id->ptr())
               : PyObject_CallMethod(hook_.ptr(), stage, "OO", map_.context().ptr(), function.ptr());
  });
  if (result == nullptr) map_.fail();
  auto returned = py::reinterpret_steal<py::object>(result);
  if (!PyCallable_Check(returned.ptr())) {
    PyErr_Format(PyExc_TypeError,
                 "pasha: %R.%s returned %R, not a function: a MapHook returns the function it was given "
                 "(or one to use instead)",
                 hook_.ptr(), stage, returned.ptr());
    map_.fail();
  }
  return returned;
}

void PyHook::pre_map(pasha::Context&) {
  GilHeld gil;
  map_.function() = run_stage("pre_map", map_.function(), nullptr);
}

void PyHook::pre_worker(pasha::Context&, int worker_id) {
  GilHeld gil;
  const py::object id = py::int_(worker_id);
  py::object& function = map_.worker_function(worker_id);
  function = run_stage("pre_worker", function ? function : map_.function(), &id);
}

void PyHook::post_worker(pasha::Context&, int worker_id) {
  if (map_.worker_failed(worker_id)) return;
  GilHeld gil;
  const py::object id = py::int_(worker_id);
  py::object& function = map_.worker_function(worker_id);
  function = run_stage("post_worker", function ? function : map_.function(), &id);
}

void PyHook::after_success() {
  GilHeld gil;
  map_.function() = run_stage("post_map", map_.function(), nullptr);
}

void WorkerOutput::post_worker(pasha::Context&, int) {
  if (getpid() == map_.caller()) return;
  GilHeld gil;
  for (const char* stream : {"stdout", "stderr"}) {
    PyObject* file = PySys_GetObject(stream);  // borrowed
    if (file == nullptr || file == Py_None) continue;
    PyObject* result = unless_thread_ended([&] { return PyObject_CallMethod(file, "flush", nullptr); });
    if (result == nullptr) {
      PyErr_Clear();  // a stream's own trouble; the share is done all the same
    } else {
      Py_DECREF(result);
    }
  }
}

}  // namespace pasha::python
