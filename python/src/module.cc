// pasha._pasha: the C++ engine under the `pasha` Python package. The package's Python code
// (python/pasha/) gives EXtra-pasha's API; everything here is internal to it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <climits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "contexts/mpi/mpi_context.h"
#include "pasha/pasha.h"
#include "python/src/compiled.h"
#include "python/src/engine.h"
#include "python/src/fork_handlers.h"
#include "python/src/xfel.h"

namespace py = pybind11;
using pasha::python::Engine;
using pasha::python::MapRequest;

namespace {

// A context's worker count as Python gives it: None for the default (one per physical core this process
// may run on); TypeError for what is not an integer; the range is the context's to check.
int num_workers_of(const py::object& given) {
  if (given.is_none()) return pasha::default_num_workers();
  const std::optional<long long> workers = pasha::python::integer_of(given);
  if (!workers) {
    throw py::type_error("pasha: num_workers must be an integer, not " + py::repr(given).cast<std::string>());
  }
  return pasha::checked_num_workers(*workers);
}

std::shared_ptr<Engine> threads_engine(const py::object& num_workers, const std::string& binding,
                                       const std::string& first_touch) {
  return std::make_shared<Engine>(std::make_shared<pasha::ThreadContext>(
      num_workers_of(num_workers), pasha::parse_binding(binding), pasha::parse_first_touch(first_touch)));
}

std::shared_ptr<Engine> processes_engine(const py::object& num_workers, const std::string& binding, bool tree) {
  return std::make_shared<Engine>(std::make_shared<pasha::ProcessContext>(
      num_workers_of(num_workers), pasha::parse_binding(binding),
      tree ? pasha::ForkMode::tree : pasha::ForkMode::sequential));
}

// An engine over an MpiContext of `local`'s context, on the communicator whose Fortran handle is
// `communicator` (mpi4py's Comm.py2f()).
std::shared_ptr<Engine> mpi_engine(const std::shared_ptr<Engine>& local, std::int64_t communicator) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized == 0) {
    throw py::value_error("pasha.MpiContext: MPI is not initialised (import mpi4py.MPI first)");
  }
  std::shared_ptr<pasha::MpiContext> context;
  {
    pasha::python::GilReleased release;  // collective: other threads may run Python meanwhile
    context = std::make_shared<pasha::MpiContext>(local->shared_context(),
                                                  MPI_Comm_f2c(static_cast<MPI_Fint>(communicator)));
  }
  return std::make_shared<Engine>(std::move(context));
}

// The MpiContext under `engine`; TypeError for any other.
pasha::MpiContext& mpi_of(Engine& engine) {
  auto* context = dynamic_cast<pasha::MpiContext*>(&engine.context());
  if (context == nullptr) throw py::type_error("pasha: not an MPI context's engine");
  return *context;
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
            pasha::python::GilReleased release;
            processes->wait_for_exited_workers();
          },
          "Reaps the worker processes of earlier maps (process contexts; nothing for others).")
      .def_property_readonly("rank", [](Engine& e) { return mpi_of(e).rank(); })
      .def_property_readonly("num_ranks", [](Engine& e) { return mpi_of(e).num_ranks(); })
      .def_property_readonly("num_nodes", [](Engine& e) { return mpi_of(e).num_nodes(); })
      .def_property_readonly("first_worker", [](Engine& e) { return mpi_of(e).first_worker(); })
      .def("alloc", &Engine::alloc, py::arg("shape"), py::arg("dtype"), py::arg("order"), py::arg("per_worker"),
           py::arg("fill") = py::none())
      .def(
          "map",
          [](Engine& engine, const py::object& kernel, const py::object& functor, py::object context,
             const std::string& schedule, const py::object& chunk, bool progress, std::optional<py::list> writes) {
            engine.map(kernel, functor, MapRequest::of(std::move(context), schedule, chunk, progress, writes));
          },
          py::arg("kernel"), py::arg("functor"), py::kw_only(), py::arg("context"), py::arg("schedule") = "static",
          py::arg("chunk") = 0, py::arg("progress") = false, py::arg("writes") = py::none(),
          "kernel(worker_id, index, value...) over every element of `functor`, with the hooks attached to "
          "the kernel; raises what a worker raised.");

  m.def(
      "thread_birth",
      []() -> py::object {
        pasha::backend::ThreadBirth birth = pasha::backend::birth_of_new_thread();
        if (!birth.parent) return py::none();
        auto* kept = new pasha::backend::ThreadBirth(std::move(birth));
        return py::capsule(kept, [](void* p) { delete static_cast<pasha::backend::ThreadBirth*>(p); });
      },
      "What a thread this one starts needs to count as the worker this one works as (or None).");
  m.def(
      "begin_thread",
      [](const py::capsule& birth) { pasha::backend::begin_thread(*birth.get_pointer<pasha::backend::ThreadBirth>()); },
      py::arg("birth"), "First thing in a new thread: it counts as the worker its starter lent (thread_birth).");

  m.def(
      "with_worker_axis",
      [](const std::vector<std::size_t>& shape, char order, const py::object& num_workers) {
        const std::optional<long long> workers = pasha::python::integer_of(num_workers);
        if (!workers || *workers < 1 || *workers > INT_MAX) {
          throw py::value_error("pasha: num_workers must be a positive integer, not " +
                                py::repr(num_workers).cast<std::string>());
        }
        const pasha::Shape full =
            pasha::with_worker_axis(pasha::Shape(shape), order == 'F' ? pasha::Order::F : pasha::Order::C,
                                   static_cast<int>(*workers));
        return std::vector<std::size_t>(full.begin(), full.end());
      },
      py::arg("shape"), py::arg("order"), py::arg("num_workers"),
      "The shape of a per-worker array of `shape`: a worker axis of num_workers first ('C') or last ('F').");

  pasha::python::bind_xfel(m);
  pasha::python::bind_compiled(m);

  m.def(
      "serial", [] { return std::make_shared<Engine>(std::make_shared<pasha::SerialContext>()); },
      "An engine whose one worker is the calling thread.");
  m.def("threads", &threads_engine, py::arg("num_workers"), py::arg("binding"), py::arg("first_touch") = "numa",
        "An engine whose workers are a pool of threads pinned with hwloc.");
  m.def("mpi", &mpi_engine, py::arg("local"), py::arg("communicator"),
        "An engine over an MPI context whose ranks each run `local`'s context (collective).");
  m.def(
      "mpi_release_all",
      [] {
        pasha::python::GilReleased release;
        pasha::MpiContext::release_all();
      },
      "Frees every MPI context's communicators and arrays now, collectively (before MPI_Finalize).");
  m.def("processes", &processes_engine, py::arg("num_workers"), py::arg("binding"), py::arg("tree"),
        "An engine whose workers are forked processes writing into shared memory.");
}
