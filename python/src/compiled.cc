#include "python/src/compiled.h"

#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <utility>
#include <variant>

#include "python/src/engine.h"
#include "python/src/py_map.h"
#include "python/src/xfel.h"

namespace pasha::python {
namespace {

// Elements [begin, end) of an element map, for one native call.
struct ElementRange {
  std::size_t begin;
  std::size_t end;
};

// One train's rows (count rows at `data`), for one native call.
struct TrainRows {
  std::uint64_t train_id;
  const void* data;
  std::size_t count;
};

// The elements of a compiled map, in ranges: an indexed functor that hands its visitor each chunk the
// engine gives it (1/64 of a share, pasha/core/detail/kernel_visitor.h) in kRangesPerChunk native
// calls, so that a failure or Ctrl-C stops the workers within 1/512 of a share of however costly
// elements, while a cheap kernel's calls stay thousands of elements long.
class ElementRanges {
 public:
  static constexpr std::size_t kRangesPerChunk = 8;

  explicit ElementRanges(std::size_t size) : size_(size) {}
  std::size_t size() const noexcept { return size_; }

  template <class Visit>
  void iterate(const IndexRange& chunk, Visit&& visit) const {
    const std::size_t step = std::max<std::size_t>(1, (chunk.end - chunk.begin) / kRangesPerChunk);
    for (std::size_t begin = chunk.begin; begin < chunk.end; begin += step) {
      if (!visit(begin, ElementRange{begin, std::min(chunk.end, begin + step)})) return;
    }
  }

 private:
  std::size_t size_;
};

// The trains of an XFEL key, each read by pasha's reader (no GIL) and handed over as its rows.
template <class T>
class KeyTrainRows {
 public:
  KeyTrainRows(const xfel::KeyData<T>& data, const PyMap& map) : data_(data), map_(&map) {}
  std::size_t size() const noexcept { return data_.size(); }

  template <class Visit>
  void iterate(const IndexRange& share, Visit&& visit) const {
    for (std::size_t i = share.begin; i < share.end; ++i) {
      Array<T> rows;
      try {
        rows = data_.rows_of_train(i);
      } catch (const xfel::FormatError& error) {
        GilHeld gil;
        raise_format_error(error, map_);
      }
      const std::size_t count = rows.ndim() > 0 ? rows.shape()[0] : 0;
      if (!visit(i, TrainRows{data_.train_ids()[i], count > 0 ? rows.data() : nullptr, count})) return;
    }
  }

 private:
  const xfel::KeyData<T>& data_;
  const PyMap* map_;
};

// The kernel as the engine calls it: the compiled entry, without the GIL; the GIL only to raise the
// exception of a failed element (PyMap::fail carries it to the caller).
class CompiledCall {
 public:
  static constexpr bool pasha_kernel_is_generic = false;

  CompiledCall(const CompiledKernel& kernel, const PyMap& map) : kernel_(&kernel), map_(&map) {}

  void operator()(int worker, std::size_t, ElementRange range) const {
    if (interrupted()) return;
    const std::int64_t failed =
        kernel_->entry()(worker, static_cast<std::int64_t>(range.begin), static_cast<std::int64_t>(range.end),
                         kernel_->pointers().data(), kernel_->shapes().data());
    if (failed >= 0) fail(worker, failed);
  }

  void operator()(int worker, std::size_t index, TrainRows rows) const {
    if (interrupted()) return;
    // The table with this train's id and rows (a copy per call: workers run trains at the same time).
    std::vector<void*> pointers = kernel_->pointers();
    std::vector<std::int64_t> shapes = kernel_->shapes();
    shapes[0] = static_cast<std::int64_t>(rows.train_id);
    pointers[0] = const_cast<void*>(rows.data);
    shapes[1] = static_cast<std::int64_t>(rows.count);
    const auto at = static_cast<std::int64_t>(index);
    const std::int64_t failed = kernel_->entry()(worker, at, at + 1, pointers.data(), shapes.data());
    if (failed >= 0) fail(worker, failed);
  }

 private:
  // On the caller's own thread (a serial context's, worker 0 of a thread context's), which runs native
  // code the engine only looks at between chunks: Ctrl-C, looked for at most every millisecond. Once
  // it came, the caller's interruption (PyMap::take_as_callers_interruption) stops the map at the
  // engine's next look, and the rest of the chunk is skipped.
  bool interrupted() const {
    if (!map_->on_callers_thread()) return false;
    if (interrupted_) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_look_ < std::chrono::milliseconds(1)) return false;
    last_look_ = now;
    GilHeld gil;
    if (unless_thread_ended([] { return PyErr_CheckSignals(); }) == 0) return false;
    if (!map_->take_as_callers_interruption()) map_->fail();  // a signal handler's own exception
    interrupted_ = true;
    return true;
  }

  [[noreturn]] void fail(int worker, std::int64_t index) const {
    GilHeld gil;
    try {
      kernel_->explain_failure()(worker, index);
      throw py::error_already_set();  // not reached: explain_failure always raises
    } catch (py::error_already_set& error) {
      error.restore();
    }
    map_->fail();
  }

  const CompiledKernel* kernel_;
  const PyMap* map_;
  // The caller's thread's alone.
  mutable bool interrupted_ = false;
  mutable std::chrono::steady_clock::time_point last_look_{};
};

}  // namespace

CompiledKernel::CompiledKernel(std::uintptr_t entry, std::size_t size, const std::vector<std::uintptr_t>& pointers,
                               std::vector<std::int64_t> shapes, py::object xfel_key, py::object explain_failure,
                               py::list keep_alive)
    : entry_(reinterpret_cast<Entry>(entry)),
      size_(size),
      shapes_(std::move(shapes)),
      xfel_key_(std::move(xfel_key)),
      explain_failure_(std::move(explain_failure)),
      keep_alive_(std::move(keep_alive)) {
  if (entry == 0) throw std::invalid_argument("pasha: a compiled kernel without an entry");
  for (const std::uintptr_t pointer : pointers) pointers_.push_back(reinterpret_cast<void*>(pointer));
  if (!xfel_key_.is_none() && !py::isinstance<XfelKey>(xfel_key_)) {
    throw py::type_error("pasha: a compiled kernel's trains come from an XfelKey");
  }
  if (pointers_.empty() || shapes_.size() < (over_trains() ? 2U : 1U)) {
    throw std::invalid_argument("pasha: a compiled kernel without data");
  }
}

void map_compiled(Engine& engine, const CompiledKernel& kernel, const MapRequest& request) {
  PyMap map(request.context, kernel.explain_failure(), engine.num_workers());
  const CompiledCall call(kernel, map);
  if (!kernel.over_trains()) {
    ElementRanges ranges(kernel.size());
    engine.run_native(call, ranges, request);
    return;
  }
  std::visit(
      [&](const auto& data) {
        KeyTrainRows trains(data, map);
        engine.run_native(call, trains, request);
      },
      kernel.xfel_key().cast<const XfelKey&>().data());
}

void bind_compiled(py::module_& m) {
  py::class_<CompiledKernel>(m, "CompiledKernel", "A numba-compiled kernel prepared for one map (internal: pasha.compiled).")
      .def(py::init<std::uintptr_t, std::size_t, const std::vector<std::uintptr_t>&, std::vector<std::int64_t>, py::object,
                    py::object, py::list>(),
           py::arg("entry"), py::arg("size"), py::arg("pointers"), py::arg("shapes"), py::arg("xfel_key"),
           py::arg("explain_failure"), py::arg("keep_alive"));
}

}  // namespace pasha::python
