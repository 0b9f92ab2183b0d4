// The engine of one Python context: a pasha::Context of any kind, giving numpy arrays over its own
// memory and running maps of Python kernels. What the `pasha` package's contexts (pasha/context.py)
// are built on. Internal to the `pasha` Python package.
#ifndef PASHA_PYTHON_SRC_ENGINE_H_
#define PASHA_PYTHON_SRC_ENGINE_H_

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pasha/pasha.h"
#include "python/src/py_map.h"

namespace pasha::python {

namespace py = pybind11;

// An integer as a user gives one (an int or a numpy integer: a numbers.Integral that is not a bool),
// clamped to long long's range; nullopt for anything else (floats, bools, arrays, strings). The one
// reading of integer arguments (num_workers, chunk).
std::optional<long long> integer_of(const py::handle& given);

// How a Python map runs: the Python context its kernel's hooks are given, and the engine's options.
struct MapRequest {
  py::object context;
  MapOptions options;

  // The options of ctx.map(..., schedule, chunk, progress) and the arrays its kernels write (writes,
  // None when not said). Throws std::invalid_argument (ValueError) naming a bad schedule or chunk.
  static MapRequest of(py::object context, const std::string& schedule, const py::object& chunk, bool progress,
                       const std::optional<py::list>& writes);
};

class Engine {
 public:
  explicit Engine(std::shared_ptr<Context> context) : context_(std::move(context)) {}
  // Destroys the context without the GIL: its destructor may join threads that wait for it (a thread
  // pool's, when the interpreter exits).
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  int num_workers() const noexcept { return context_->num_workers(); }
  std::string name() const { return context_->name(); }
  Context& context() const noexcept { return *context_; }
  const std::shared_ptr<Context>& shared_context() const noexcept { return context_; }

  // A new array over the context's memory, kept alive by the array (and every view of it): `shape`
  // with a worker axis added (first for 'C', last for 'F') when `per_worker`; contiguous. `fill` (None:
  // left as it is) is written in, unless it is zero and the memory reads as zeros already.
  py::array alloc(const std::vector<std::size_t>& shape, const py::dtype& dtype, char order, bool per_worker,
                  const py::object& fill);

  // The one map of the package: kernel(worker_id, index, value...) over `functor` (what
  // pasha.Functor.try_wrap gave), with the hooks attached to the kernel (_pasha_hooks_). The engine
  // recognises the collection: the built-in sequence functors' sequences are read by index, pasha.xfel's
  // (and EXtra-data's, when pasha's reader opened them) collections by pasha's XFEL reader, and any
  // other functor is split by its own split() and walked by its iterate() in the workers. Raises in
  // Python what the workers raised.
  void map(const py::object& kernel, const py::object& functor, const MapRequest& request);

  // Runs `functor` (a pasha functor whose values a PyKernel takes) with `map`'s kernel and hooks and
  // `request`'s options, and raises in Python what the workers raised. For the adapters of this package.
  template <class Functor>
  void run(Functor& functor, PyMap& map, const MapRequest& request);

  // Runs `kernel` (a native kernel, without hooks) over `functor` with `request`'s options, without the
  // GIL, and raises in Python what the workers raised.
  template <class Kernel, class Functor>
  void run_native(const Kernel& kernel, Functor& functor, const MapRequest& request);

 private:
  // Raises in Python (error_already_set) the failure `error` reports: the worker's own exception.
  [[noreturn]] void raise(const WorkerError& error) const;

  std::shared_ptr<Context> context_;
};

// The hooks of a map as C++ hooks, owned until the map returns: the worker-output flush first, then
// one PyHook per Python hook attached to the kernel, in the order they were attached.
class MapHooks {
 public:
  MapHooks(PyMap& map, const py::object& kernel);
  std::vector<pasha::MapHook*> pointers();
  std::vector<PyHook*> python_hooks();

 private:
  WorkerOutput output_;
  std::vector<std::unique_ptr<PyHook>> python_;
};

template <class Functor>
void Engine::run(Functor& functor, PyMap& map, const MapRequest& request) {
  MapHooks hooks(map, map.function());
  PyKernel py_kernel(map, hooks.pointers(), hooks.python_hooks());
  try {
    GilReleased release;
    context_->map(py_kernel, functor, request.options);
  } catch (const WorkerError& error) {
    raise(error);
  }
}

template <class Kernel, class Functor>
void Engine::run_native(const Kernel& kernel, Functor& functor, const MapRequest& request) {
  try {
    GilReleased release;
    context_->map(kernel, functor, request.options);
  } catch (const WorkerError& error) {
    raise(error);
  }
}

}  // namespace pasha::python

#endif  // PASHA_PYTHON_SRC_ENGINE_H_
