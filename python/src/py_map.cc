#include "python/src/py_map.h"

#include <unistd.h>

#include <array>
#include <string>

namespace pasha::python {
namespace {

// pasha._errors.capture(exception, max_bytes) -> bytes: what the caller needs to raise it again.
std::string captured(const py::error_already_set& error, std::size_t max_bytes) {
  const py::object capture = py::module_::import("pasha._errors").attr("capture");
  return capture(error.value(), max_bytes, traceback_of(error)).cast<std::string>();
}

}  // namespace

PyMap::PyMap(py::object context, py::object kernel, int num_workers, ErrorArea* errors)
    : context_(std::move(context)),
      function_(std::move(kernel)),
      worker_functions_(static_cast<std::size_t>(num_workers)),
      worker_failed_(static_cast<std::size_t>(num_workers), 0),
      errors_(errors),
      generation_(errors != nullptr ? errors->new_generation() : 0),
      caller_(getpid()) {}

void PyMap::record_failure(const py::error_already_set& error) const {
  if (const int worker = pasha::this_worker_id(); worker >= 0) worker_failed_[slot(worker)] = 1;
  if (errors_ == nullptr || getpid() == caller_) return;  // the caller has the exception itself
  try {
    errors_->write(pasha::this_worker_id(), generation_, captured(error, ErrorArea::kPayloadBytes));
  } catch (const py::error_already_set&) {
    // The description failed: the caller then rebuilds the error from its type name and message.
  }
}

py::object PyMap::recorded_failure(int worker) const {
  if (errors_ == nullptr) return py::none();
  const std::string payload = errors_->read(worker, generation_);
  if (payload.empty()) return py::none();
  return py::bytes(payload);
}

void PyKernel::call(int worker, PyObject* const* args, std::size_t count) const {
  PyObject* result = PyObject_Vectorcall(map_->function_of(worker), args, count | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                         nullptr);
  if (result == nullptr) {
    py::error_already_set error;
    map_->record_failure(error);
    throw error;
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

void PySequence::fail() const {
  py::error_already_set error;
  map_->record_failure(error);
  throw error;
}

py::object PyShares::iterate_share(std::size_t share) const {
  try {
    return functor_.attr("iterate")(shares_[share]);
  } catch (const py::error_already_set& error) {
    map_->record_failure(error);
    throw;
  }
}

void PyShares::fail() const {
  py::error_already_set error;
  map_->record_failure(error);
  throw error;
}

void PyShares::not_a_tuple(const py::object& entry) const {
  PyErr_Format(PyExc_TypeError, "pasha: %R.iterate(share) must yield tuples (index, value, ...), not %R",
               functor_.ptr(), entry.ptr());
  fail();
}

py::object PyHooks::run_stage(const char* stage, py::object function, const py::object* worker_id) const {
  try {
    for (const py::handle hook : hooks_) {
      py::object result = worker_id != nullptr ? hook.attr(stage)(map_.context(), function, *worker_id)
                                               : hook.attr(stage)(map_.context(), function);
      if (!PyCallable_Check(result.ptr())) {
        PyErr_Format(PyExc_TypeError,
                     "pasha: %R.%s returned %R, not a function: a MapHook returns the function it was given "
                     "(or one to use instead)",
                     hook.ptr(), stage, result.ptr());
        throw py::error_already_set();
      }
      function = std::move(result);
    }
    return function;
  } catch (const py::error_already_set& error) {
    map_.record_failure(error);
    throw;
  }
}

void PyHooks::pre_map(pasha::Context&) {
  py::gil_scoped_acquire gil;
  map_.function() = run_stage("pre_map", map_.function(), nullptr);
}

void PyHooks::pre_worker(pasha::Context&, int worker_id) {
  py::gil_scoped_acquire gil;
  const py::object id = py::int_(worker_id);
  map_.worker_function(worker_id) = run_stage("pre_worker", map_.function(), &id);
}

void PyHooks::post_worker(pasha::Context&, int worker_id) {
  if (map_.worker_failed(worker_id)) return;
  py::gil_scoped_acquire gil;
  const py::object id = py::int_(worker_id);
  py::object& function = map_.worker_function(worker_id);
  function = run_stage("post_worker", function ? function : map_.function(), &id);
}

void PyHooks::after_success() {
  py::gil_scoped_acquire gil;
  map_.function() = run_stage("post_map", map_.function(), nullptr);
}

void PyKernel::pasha_prepare_results(pasha::Context&) const {
  if (python_hooks_ != nullptr) python_hooks_->after_success();
}

void WorkerOutput::post_worker(pasha::Context&, int) {
  if (getpid() == map_.caller()) return;
  py::gil_scoped_acquire gil;
  for (const char* stream : {"stdout", "stderr"}) {
    PyObject* file = PySys_GetObject(stream);  // borrowed
    if (file == nullptr || file == Py_None) continue;
    PyObject* result = PyObject_CallMethod(file, "flush", nullptr);
    if (result == nullptr) {
      PyErr_Clear();  // a stream's own trouble; the share is done all the same
    } else {
      Py_DECREF(result);
    }
  }
}

}  // namespace pasha::python
