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
#include "python/src/error_area.h"
#include "python/src/py_map.h"

namespace pasha::python {

namespace py = pybind11;

// How a Python map runs: the hooks of its kernel (_pasha_hooks_), the Python context they are given,
// and the engine's options.
struct MapRequest {
  py::object context;
  py::list hooks;
  std::string schedule = "static";  // or "dynamic"
  std::size_t chunk = 0;
  bool progress = false;
  std::optional<py::list> writes;  // the arrays the kernels write (MapOptions::writes), if said
};

class Engine {
 public:
  // `processes`: the context's workers are processes (its own, or its local context's), whose Python
  // exceptions must be described in shared memory to reach the caller.
  Engine(std::shared_ptr<Context> context, bool processes);

  int num_workers() const noexcept { return context_->num_workers(); }
  std::string name() const { return context_->name(); }
  Context& context() const noexcept { return *context_; }
  const std::shared_ptr<Context>& shared_context() const noexcept { return context_; }

  // A new array over the context's memory, kept alive by the array (and every view of it): `shape`
  // with a worker axis added (first for 'C', last for 'F') when `per_worker`; contiguous.
  py::array alloc(const std::vector<std::size_t>& shape, const py::dtype& dtype, char order, bool per_worker);

  // Maps `kernel` over sequence[i] for i in [0, length).
  void map_sequence(const py::object& kernel, const py::object& sequence, std::size_t length, const MapRequest& request);
  // Maps `kernel` over the entries functor.iterate(share) yields for each of `shares`.
  void map_shares(const py::object& kernel, const py::object& functor, const py::list& shares,
                  const MapRequest& request);

  // Runs `functor` (a pasha functor whose values a PyKernel takes) with `kernel` and `request`'s hooks
  // and options, and raises in Python what the workers raised. For the adapters of this package.
  template <class Functor>
  void run(Functor& functor, PyMap& map, const MapRequest& request);

  ErrorArea* errors() noexcept { return processes_ ? &errors_ : nullptr; }
  bool workers_are_processes() const noexcept { return processes_; }

 private:
  // Raises in Python (error_already_set) the failure `error` reports: the worker's own exception.
  [[noreturn]] void raise(const WorkerError& error, const PyMap& map) const;
  pasha::MapOptions options_of(const MapRequest& request) const;

  std::shared_ptr<Context> context_;
  bool processes_;
  ErrorArea errors_;
};

// The hooks of a map as C++ hooks, owned until the map returns: the worker-output flush first, then
// the Python hooks, if the kernel has any.
class MapHooks {
 public:
  MapHooks(PyMap& map, const py::list& hooks);
  std::vector<pasha::MapHook*> pointers();
  PyHooks* python_hooks() noexcept { return python_.get(); }

 private:
  WorkerOutput output_;
  std::unique_ptr<PyHooks> python_;
};

template <class Functor>
void Engine::run(Functor& functor, PyMap& map, const MapRequest& request) {
  MapHooks hooks(map, request.hooks);
  PyKernel py_kernel(map, hooks.pointers(), hooks.python_hooks());
  const pasha::MapOptions options = options_of(request);
  try {
    GilReleased release;
    context_->map(py_kernel, functor, options);
  } catch (const WorkerError& error) {
    raise(error, map);
  }
}

}  // namespace pasha::python

#endif  // PASHA_PYTHON_SRC_ENGINE_H_
