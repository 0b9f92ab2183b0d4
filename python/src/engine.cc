#include "python/src/engine.h"

#include <utility>

namespace pasha::python {
namespace {

// Raises in Python the exception `error` holds, with the worker's id and where it ran attached by
// pasha._errors.attach.
[[noreturn]] void raise_again(const py::error_already_set& error, int worker, const std::string& where) {
  py::module_::import("pasha._errors").attr("attach")(error.value(), worker, where, py::none(), traceback_of(error));
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error.value().ptr())), error.value().ptr());
  throw py::error_already_set();
}

// Raises `exception` (a Python exception object).
[[noreturn]] void raise_object(const py::object& exception) {
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exception.ptr())), exception.ptr());
  throw py::error_already_set();
}

// Ctrl-C in the caller during a map: the signal handlers Python runs may raise (KeyboardInterrupt).
void check_python_signals() {
  py::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

}  // namespace

Engine::Engine(std::shared_ptr<Context> context, bool processes)
    : context_(std::move(context)), processes_(processes), errors_(*context_) {}

py::array Engine::alloc(const std::vector<std::size_t>& shape, const py::dtype& dtype, char order, bool per_worker) {
  const Order layout_order = order == 'F' ? Order::F : Order::C;
  const auto itemsize = static_cast<std::size_t>(dtype.itemsize());
  Context::RawArray raw = [&] {
    GilReleased release;  // a context may take its map lock, or reach other ranks
    return context_->alloc_raw(Shape(shape), itemsize, layout_order, per_worker, /*pad_worker_slices=*/false);
  }();
  std::vector<py::ssize_t> extents, strides;
  for (std::size_t axis = 0; axis < raw.shape.ndim(); ++axis) {
    extents.push_back(static_cast<py::ssize_t>(raw.shape[axis]));
    strides.push_back(static_cast<py::ssize_t>(raw.strides[axis]) * static_cast<py::ssize_t>(itemsize));
  }
  // The array (and every view of it) keeps the memory alive through this capsule.
  auto* owner = new std::shared_ptr<void>(std::move(raw.memory));
  const py::capsule base(owner, [](void* p) { delete static_cast<std::shared_ptr<void>*>(p); });
  return py::array(dtype, extents, strides, raw.data, base);
}

MapHooks::MapHooks(PyMap& map, const py::list& hooks) : output_(map) {
  if (!hooks.empty()) python_ = std::make_unique<PyHooks>(map, hooks);
}

std::vector<pasha::MapHook*> MapHooks::pointers() {
  std::vector<pasha::MapHook*> all{&output_};
  if (python_) all.push_back(python_.get());
  return all;
}

pasha::MapOptions Engine::options_of(const MapRequest& request) const {
  pasha::MapOptions options;
  options.schedule = request.schedule == "dynamic" ? Schedule::dynamic : Schedule::static_shares;
  options.chunk = request.chunk;
  options.progress = request.progress;
  options.interrupt_check = check_python_signals;
  if (request.writes) {
    std::vector<std::pair<const void*, const void*>> spans;
    for (const py::handle item : *request.writes) {
      const auto array = py::reinterpret_borrow<py::array>(item);
      const auto* first = static_cast<const char*>(array.data());
      spans.emplace_back(first, first + array.nbytes());
    }
    options.writes = WrittenArrays::of_memory(std::move(spans));
  }
  return options;
}

void Engine::map_sequence(const py::object& kernel, const py::object& sequence, std::size_t length,
                          const MapRequest& request) {
  PyMap map(request.context, kernel, num_workers(), errors());
  PySequence functor(sequence, length, map);
  run(functor, map, request);
}

void Engine::map_shares(const py::object& kernel, const py::object& functor, const py::list& shares,
                        const MapRequest& request) {
  PyMap map(request.context, kernel, num_workers(), errors());
  std::vector<py::object> each;
  for (const py::handle share : shares) each.push_back(py::reinterpret_borrow<py::object>(share));
  PyShares walk(functor, std::move(each), map);
  run(walk, map, request);
}

void Engine::raise(const WorkerError& error, const PyMap& map) const {
  const int worker = error.worker_id();
  const std::string where = context_->name();
  try {
    std::rethrow_if_nested(error);
  } catch (const py::error_already_set& original) {
    raise_again(original, worker, where);  // this process's worker: the exception object itself
  } catch (const RemoteError& remote) {
    raise_object(py::module_::import("pasha._errors")
                     .attr("rebuild")(map.recorded_failure(worker), worker, where, remote.type_name(), remote.what(),
                                      error.what()));
  } catch (const std::exception& other) {
    raise_object(py::module_::import("pasha._errors")
                     .attr("rebuild")(py::none(), worker, where, "", other.what(),
                                      error.what()));
  } catch (...) {
  }
  raise_object(py::module_::import("pasha._errors").attr("rebuild")(py::none(), worker, where, "", "", error.what()));
}

}  // namespace pasha::python
