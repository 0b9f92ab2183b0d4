// pasha._pasha: the C++ engine under the `pasha` Python package. The package's Python code
// (python/pasha/) gives EXtra-pasha's API; everything here is internal to it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pasha/pasha.h"
#include "python/src/engine.h"
#include "python/src/fork_handlers.h"
#include "python/src/xfel.h"

namespace py = pybind11;
using pasha::python::Engine;
using pasha::python::MapRequest;

namespace {

pasha::Binding binding_named(const std::string& name) { return pasha::parse_binding(name); }

std::shared_ptr<Engine> threads_engine(std::optional<int> num_workers, const std::string& binding) {
  const int workers = num_workers.value_or(pasha::default_num_workers());
  return std::make_shared<Engine>(std::make_shared<pasha::ThreadContext>(workers, binding_named(binding)), false);
}

std::shared_ptr<Engine> processes_engine(std::optional<int> num_workers, const std::string& binding, bool tree) {
  const int workers = num_workers.value_or(pasha::default_num_workers());
  return std::make_shared<Engine>(
      std::make_shared<pasha::ProcessContext>(workers, binding_named(binding),
                                              tree ? pasha::ForkMode::tree : pasha::ForkMode::sequential),
      true);
}

MapRequest request_of(py::object context, py::list hooks, std::string schedule, std::size_t chunk, bool progress,
                      std::optional<py::list> writes) {
  if (schedule != "static" && schedule != "dynamic") {
    throw py::value_error("pasha: schedule must be 'static' or 'dynamic', not '" + schedule + "'");
  }
  return MapRequest{std::move(context), std::move(hooks), std::move(schedule), chunk, progress, std::move(writes)};
}

}  // namespace

PYBIND11_MODULE(_pasha, m) {
  m.doc() = "The C++ engine under the pasha package (internal: use the pasha module).";
  pasha::python::register_python_fork_handlers();

  py::register_exception_translator([](std::exception_ptr error) {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const pasha::AllocationError& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    }
  });

  m.def("default_num_workers", &pasha::default_num_workers,
        "One worker per physical core this process may run on (its cpuset, as hwloc reads it).");

  py::class_<Engine, std::shared_ptr<Engine>>(m, "Engine")
      .def_property_readonly("num_workers", &Engine::num_workers)
      .def_property_readonly("name", &Engine::name)
      .def(
          "wait_for_exited_workers",
          [](Engine& engine) {
            auto* processes = dynamic_cast<pasha::ProcessContext*>(&engine.context());
            if (processes == nullptr) return;
            py::gil_scoped_release release;
            processes->wait_for_exited_workers();
          },
          "Reaps the worker processes of earlier maps (process contexts; nothing for others).")
      .def("alloc", &Engine::alloc, py::arg("shape"), py::arg("dtype"), py::arg("order"), py::arg("per_worker"))
      .def(
          "map_sequence",
          [](Engine& engine, const py::object& kernel, const py::object& sequence, std::size_t length,
             py::object context, py::list hooks, std::string schedule, std::size_t chunk, bool progress,
             std::optional<py::list> writes) {
            engine.map_sequence(kernel, sequence, length,
                                request_of(std::move(context), std::move(hooks), std::move(schedule), chunk, progress,
                                           std::move(writes)));
          },
          py::arg("kernel"), py::arg("sequence"), py::arg("length"), py::arg("context"), py::arg("hooks"),
          py::arg("schedule"), py::arg("chunk"), py::arg("progress"), py::arg("writes"))
      .def(
          "map_shares",
          [](Engine& engine, const py::object& kernel, const py::object& functor, const py::list& shares,
             py::object context, py::list hooks, std::string schedule, std::size_t chunk, bool progress,
             std::optional<py::list> writes) {
            engine.map_shares(kernel, functor, shares,
                              request_of(std::move(context), std::move(hooks), std::move(schedule), chunk, progress,
                                         std::move(writes)));
          },
          py::arg("kernel"), py::arg("functor"), py::arg("shares"), py::arg("context"), py::arg("hooks"),
          py::arg("schedule"), py::arg("chunk"), py::arg("progress"), py::arg("writes"))
      .def(
          "map_xfel",
          [](Engine& engine, const py::object& kernel, const py::object& target, py::object context, py::list hooks,
             std::string schedule, std::size_t chunk, bool progress, std::optional<py::list> writes) {
            pasha::python::map_xfel(engine, kernel, target,
                                    request_of(std::move(context), std::move(hooks), std::move(schedule), chunk,
                                               progress, std::move(writes)));
          },
          py::arg("kernel"), py::arg("target"), py::arg("context"), py::arg("hooks"), py::arg("schedule"),
          py::arg("chunk"), py::arg("progress"), py::arg("writes"));

  pasha::python::bind_xfel(m);

  m.def(
      "serial", [] { return std::make_shared<Engine>(std::make_shared<pasha::SerialContext>(), false); },
      "An engine whose one worker is the calling thread.");
  m.def("threads", &threads_engine, py::arg("num_workers"), py::arg("binding"),
        "An engine whose workers are a pool of threads pinned with hwloc.");
  m.def("processes", &processes_engine, py::arg("num_workers"), py::arg("binding"), py::arg("tree"),
        "An engine whose workers are forked processes writing into shared memory.");
}
