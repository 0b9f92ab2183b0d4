// Compiled kernels (pasha/compiled.py): a kernel that numba compiled to native code, which pasha's
// workers call directly, one native call per range of elements (or per XFEL train), without the GIL in
// any context. Internal to the `pasha` Python package.
#ifndef PASHA_PYTHON_SRC_COMPILED_H_
#define PASHA_PYTHON_SRC_COMPILED_H_

#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pasha::python {

namespace py = pybind11;

class Engine;
struct MapRequest;

// The compiled entry of a kernel and what it reads, as pasha.compiled prepared them for one map.
//
// entry(worker_id, begin, end, pointers, shapes) runs the kernel over elements [begin, end) (or, over
// trains, on train `begin`, whose id is shapes[0] and whose rows are pointers[0], shapes[1] of them)
// and returns -1, or the index of the element whose kernel raised. pointers and shapes are the table
// of the arrays' addresses and extents, which the entry reads in its order.
class CompiledKernel {
 public:
  using Entry = std::int64_t (*)(std::int64_t worker_id, std::int64_t begin, std::int64_t end, void* const* pointers,
                                 const std::int64_t* shapes);

  // `explain_failure(worker_id, index)` runs the failing element again through Python to raise its
  // exception; `keep_alive` holds what the table points into (the arrays, the compiled code).
  CompiledKernel(std::uintptr_t entry, std::size_t size, const std::vector<std::uintptr_t>& pointers,
                 std::vector<std::int64_t> shapes, py::object xfel_key, py::object explain_failure, py::list keep_alive);

  Entry entry() const noexcept { return entry_; }
  std::size_t size() const noexcept { return size_; }
  const std::vector<void*>& pointers() const noexcept { return pointers_; }
  const std::vector<std::int64_t>& shapes() const noexcept { return shapes_; }
  // Over the trains of this XfelKey (pasha.compiled found it in the collection), or None: over elements.
  const py::object& xfel_key() const noexcept { return xfel_key_; }
  bool over_trains() const noexcept { return !xfel_key_.is_none(); }
  const py::object& explain_failure() const noexcept { return explain_failure_; }

 private:
  Entry entry_;
  std::size_t size_;
  std::vector<void*> pointers_;
  std::vector<std::int64_t> shapes_;
  py::object xfel_key_;
  py::object explain_failure_;
  py::list keep_alive_;
};

// Runs `kernel` over its elements (or its XFEL key's trains) on `engine`, and raises in Python what a
// kernel raised. For Engine::map.
void map_compiled(Engine& engine, const CompiledKernel& kernel, const MapRequest& request);

// Adds CompiledKernel to the module.
void bind_compiled(py::module_& m);

}  // namespace pasha::python

#endif  // PASHA_PYTHON_SRC_COMPILED_H_
