#include "python/src/engine.h"

#include <climits>
#include <optional>
#include <utility>

#include "python/src/compiled.h"
#include "python/src/xfel.h"

namespace pasha::python {
namespace {

// Raises `exception` (a Python exception object).
[[noreturn]] void raise_object(const py::object& exception) {
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exception.ptr())), exception.ptr());
  throw py::error_already_set();
}

// `text` as a Python str, bytes that are not UTF-8 replaced (a message cut by a C++ library, say).
py::str text_of(const std::string& text) {
  return py::reinterpret_steal<py::str>(PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "replace"));
}

// Ctrl-C in the caller during a map: the signal handlers Python runs may raise (KeyboardInterrupt).
void check_python_signals() {
  GilHeld gil;
  if (unless_thread_ended([] { return PyErr_CheckSignals(); }) != 0) throw py::error_already_set();
}

// `functor` is an instance of `base` whose split and iterate are base's own (no subclass changed how it
// is walked): the engine may walk it itself.
bool walks_as(const py::object& functor, const py::object& base) {
  if (!py::isinstance(functor, base)) return false;
  const py::object type = py::type::of(functor);
  return type.attr("split").is(base.attr("split")) && type.attr("iterate").is(base.attr("iterate"));
}

}  // namespace

std::optional<long long> integer_of(const py::handle& given) {
  static const py::handle integral = py::object(py::module_::import("numbers").attr("Integral")).release();
  if (PyBool_Check(given.ptr()) || !py::isinstance(given, integral)) return std::nullopt;
  const auto value = py::reinterpret_steal<py::object>(PyNumber_Index(given.ptr()));
  if (!value) throw py::error_already_set();
  int overflow = 0;
  const long long result = PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
  if (overflow != 0) return overflow > 0 ? LLONG_MAX : LLONG_MIN;
  return result;
}

MapRequest MapRequest::of(py::object context, const std::string& schedule, const py::object& chunk, bool progress,
                          const std::optional<py::list>& writes) {
  MapRequest request{std::move(context), {}};
  MapOptions& options = request.options;
  if (schedule == "static") {
    options.schedule = Schedule::static_shares;
  } else if (schedule == "dynamic") {
    options.schedule = Schedule::dynamic;
  } else {
    throw std::invalid_argument("pasha: schedule must be 'static' or 'dynamic', not '" + schedule + "'");
  }
  const std::optional<long long> chunk_value = integer_of(chunk);
  if (!chunk_value || *chunk_value < 0) {
    throw std::invalid_argument("pasha: chunk must be a non-negative integer, not " +
                                py::repr(chunk).cast<std::string>());
  }
  options.chunk = static_cast<std::size_t>(*chunk_value);
  options.progress = progress;
  options.interrupt_check = check_python_signals;
  if (writes) {
    std::vector<std::pair<const void*, const void*>> spans;
    for (const py::handle item : *writes) {
      if (!py::isinstance<py::array>(item)) {
        throw py::type_error("pasha: the arrays a map writes must be numpy arrays, not " +
                             py::repr(item).cast<std::string>());
      }
      const auto array = py::reinterpret_borrow<py::array>(item);
      const auto* first = static_cast<const char*>(array.data());
      spans.emplace_back(first, first + array.nbytes());
    }
    options.writes = WrittenArrays::of_memory(std::move(spans));
  }
  return request;
}

Engine::~Engine() {
  if (PyGILState_Check() != 0) {
    GilReleased release;
    context_.reset();
  }
}

py::array Engine::alloc(const std::vector<std::size_t>& shape, const py::dtype& dtype, char order, bool per_worker,
                        const py::object& fill) {
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
  py::array array(dtype, extents, strides, raw.data, base);
  if (!fill.is_none()) {
    const auto value = py::reinterpret_steal<py::array>(py::module_::import("numpy").attr("asarray")(fill, dtype).release());
    const bool zeros_already = raw.reads_as_zeros && value.ndim() == 0 &&
                               detail::all_bytes_zero(value.data(), static_cast<std::size_t>(value.itemsize()));
    if (!zeros_already) array[py::ellipsis()] = value;
  }
  return array;
}

MapHooks::MapHooks(PyMap& map, const py::object& kernel) : output_(map) {
  const py::object attached = py::getattr(kernel, "_pasha_hooks_", py::tuple());
  for (const py::handle hook : attached) {
    python_.push_back(std::make_unique<PyHook>(map, py::reinterpret_borrow<py::object>(hook)));
  }
}

std::vector<pasha::MapHook*> MapHooks::pointers() {
  std::vector<pasha::MapHook*> all{&output_};
  for (const auto& hook : python_) all.push_back(hook.get());
  return all;
}

std::vector<PyHook*> MapHooks::python_hooks() {
  std::vector<PyHook*> all;
  for (const auto& hook : python_) all.push_back(hook.get());
  return all;
}

void Engine::map(const py::object& kernel, const py::object& functor, const MapRequest& request) {
  // A numba-compiled kernel, as pasha.compiled prepared it: called natively by the workers.
  if (py::isinstance<CompiledKernel>(kernel)) {
    map_compiled(*this, kernel.cast<const CompiledKernel&>(), request);
    return;
  }
  if (PyCallable_Check(kernel.ptr()) == 0) {
    throw py::type_error("pasha: the kernel must be callable, not " + py::repr(kernel).cast<std::string>());
  }
  PyMap map(request.context, kernel, num_workers());
  const py::module_ functors = py::module_::import("pasha.functor");
  // pasha.xfel's collections, and EXtra-data's that pasha's reader opened: read by pasha's reader.
  if (walks_as(functor, functors.attr("XfelFunctor"))) {
    map_xfel(*this, map, functor.attr("obj").attr("_engine"), request);
    return;
  }
  if (walks_as(functor, functors.attr("ExtraDataFunctor")) && !functor.attr("_pasha").is_none()) {
    map_xfel(*this, map, functor.attr("_pasha").attr("_engine"), request);
    return;
  }
  // Sequences, numpy arrays and DataArrays: read by index, split and scheduled by the engine.
  if (walks_as(functor, functors.attr("SequenceFunctor"))) {
    const py::object sequence = functor.attr("sequence");
    PySequence walk(sequence, py::len(sequence), map);
    run(walk, map, request);
    return;
  }
  // Any other functor: its own shares.
  std::vector<py::object> shares;
  for (const py::handle share : functor.attr("split")(num_workers())) {
    shares.push_back(py::reinterpret_borrow<py::object>(share));
  }
  PyShares walk(functor, std::move(shares), map);
  run(walk, map, request);
}

void Engine::raise(const WorkerError& error) const {
  const int worker = error.worker_id();
  const std::string where = context_->name();
  const py::object errors = py::module_::import("pasha._errors");
  try {
    std::rethrow_if_nested(error);
  } catch (const py::error_already_set& original) {
    // This process's worker: the exception object itself.
    errors.attr("attach")(original.value(), worker, where, py::none(), traceback_of(original));
    raise_object(original.value());
  } catch (const RemoteError& remote) {
    const py::object payload = remote.payload().empty() ? py::object(py::none()) : py::bytes(remote.payload());
    raise_object(errors.attr("rebuild")(payload, worker, where, text_of(remote.type_name()), text_of(remote.what()),
                                        text_of(error.what())));
  } catch (const std::exception& other) {
    raise_object(errors.attr("rebuild")(py::none(), worker, where, "", text_of(other.what()), text_of(error.what())));
  } catch (...) {
  }
  raise_object(errors.attr("rebuild")(py::none(), worker, where, "", "", text_of(error.what())));
}

}  // namespace pasha::python
