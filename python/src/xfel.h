// European XFEL runs for the `pasha` Python package: pasha::xfel's collections as Python objects
// (pasha/xfel/ wraps them in EXtra-data's API), each train's data as EXtra-data's trains() gives it
// (numpy arrays over memory of their own, mapped from the file where the rows are large), and the
// functors that walk them in a Python map, reading with pasha's C++ reader outside the GIL and
// calling kernel(worker_id, index, train_id, data) as EXtra-pasha's ExtraDataFunctor does. Internal
// to the `pasha` Python package.
#ifndef PASHA_PYTHON_SRC_XFEL_H_
#define PASHA_PYTHON_SRC_XFEL_H_

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "functors/xfel/xfel.h"
#include "pasha/pasha.h"
#include "python/src/py_map.h"

namespace pasha::python {

namespace py = pybind11;

template <template <class> class Of>
using ForEachElementType = std::variant<Of<std::int8_t>, Of<std::uint8_t>, Of<std::int16_t>, Of<std::uint16_t>,
                                        Of<std::int32_t>, Of<std::uint32_t>, Of<std::int64_t>, Of<std::uint64_t>,
                                        Of<float>, Of<double>>;
// A KeyData read as the type its key is stored as, and rows of any such type.
using AnyKeyData = ForEachElementType<xfel::KeyData>;
using AnyRows = ForEachElementType<Array>;

// The Python exception pasha.xfel.FormatError (a ValueError), made when the module loads.
void register_format_error(py::module_& module);
// Raises pasha.xfel.FormatError with the message of the FormatError being handled, as a Python
// exception recorded for `map` (a worker's failure), and throws it.
[[noreturn]] void raise_format_error(const xfel::FormatError& error, const PyMap* map);

// One train's data as EXtra-data gives it: rows of one key (None when the train has none, the entry
// alone when it has one and `squeeze_one`, else all rows), and per source a dict key -> data with
// 'metadata' ({'source': ..., 'timestamp.tid': train id}), keys without data left out.
py::object rows_to_python(AnyRows&& rows, bool squeeze_one);

// The keys of one source with the type each is read as: numeric keys only (strings are left out).
struct SourceKeys {
  std::string source;
  std::vector<std::pair<std::string, xfel::ElementType>> keys;
};
SourceKeys source_keys(const xfel::DataCollection& run, const std::string& source);

// One train's rows of some sources' keys, read outside the GIL: per source, per key, nullopt when
// the train has no rows there.
using SourceRows = std::vector<std::optional<AnyRows>>;
// The dict EXtra-data's trains() gives for one source of one train (with the GIL).
py::dict source_dict(const SourceKeys& keys, SourceRows& rows, std::uint64_t train_id);

// One (source, key) over a collection's trains, read as its stored type. FormatError for a key the
// reader cannot read as numbers (strings).
class XfelKey {
 public:
  XfelKey(const xfel::DataCollection& run, const std::string& source, const std::string& key);

  const std::string& source() const noexcept { return source_; }
  const std::string& key() const noexcept { return key_; }
  py::dtype dtype() const;
  py::tuple entry_shape() const;
  py::tuple shape() const;
  py::array train_ids() const;
  py::array data_counts() const;
  py::array train_id_coordinates() const;
  py::array ndarray() const;  // every selected row, in train order
  XfelKey select_trains(const xfel::TrainSelection& selection) const;
  std::size_t size() const;
  // (train_id as numpy.uint64, the rows as EXtra-data's KeyData.trains gives them) at `index`: None
  // for no rows, the entry alone for one; with `keep_dims`, always the rows (count first).
  py::tuple train(std::size_t index, bool keep_dims) const;
  void close() const;
  const AnyKeyData& data() const noexcept { return data_; }

 private:
  XfelKey(AnyKeyData data, std::string source, std::string key)
      : data_(std::move(data)), source_(std::move(source)), key_(std::move(key)) {}
  AnyKeyData data_;
  std::string source_;
  std::string key_;
};

// One source over a collection's trains (EXtra-data's run[source]), each train a dict key -> data.
class XfelSource {
 public:
  XfelSource(const xfel::DataCollection& run, const std::string& source);

  const std::string& source() const noexcept { return data_.source(); }
  const std::vector<std::string>& keys() const noexcept { return data_.keys(); }
  py::array train_ids() const;
  XfelSource select_trains(const xfel::TrainSelection& selection) const;
  std::size_t size() const noexcept { return data_.size(); }

  // Train `index` read (no GIL needed), and as (train_id, dict) for Python (with the GIL).
  SourceRows read(std::size_t index) const;
  py::tuple train_of(std::size_t index, SourceRows rows) const;
  py::tuple train(std::size_t index) const;

 private:
  xfel::DataCollection run_;
  xfel::SourceData data_;
  SourceKeys keys_;
};

// A run with its selection (EXtra-data's DataCollection), each train a dict source -> key -> data.
class XfelRun {
 public:
  explicit XfelRun(xfel::DataCollection run);

  const xfel::DataCollection& run() const noexcept { return run_; }
  py::array train_ids() const;
  std::size_t size() const noexcept { return run_.size(); }

  // Train `index` read (no GIL needed), and as (train_id, dict) for Python (with the GIL).
  std::vector<SourceRows> read(std::size_t index) const;
  py::tuple train_of(std::size_t index, std::vector<SourceRows> rows) const;
  py::tuple train(std::size_t index) const;

 private:
  xfel::DataCollection run_;
  std::vector<SourceKeys> sources_;  // every selected source's numeric keys
};

// The functors of a Python map over XFEL data: indexed (the engine chunks and schedules them), each
// train read outside the GIL, then handed to the kernel as (index, train_id, data) with the GIL.
// Not pass-through: a failure (or Ctrl-C) stops the other workers after their current train. A
// damaged file raises pasha.xfel.FormatError in the worker, as a kernel's exception would be.
//
// Walks the trains of `share`: rows = read(i) outside the GIL, then visit(i, entry(i, rows)) with it.
template <class Read, class MakeEntry, class Visit>
void walk_trains(const IndexRange& share, const PyMap* map, Read&& read, MakeEntry&& entry, Visit&& visit) {
  for (std::size_t i = share.begin; i < share.end; ++i) {
    decltype(read(i)) rows;
    try {
      rows = read(i);
    } catch (const xfel::FormatError& error) {
      GilHeld gil;
      raise_format_error(error, map);
    }
    GilHeld gil;
    if (!visit(i, PyKernel::Entry{entry(i, std::move(rows))})) return;
  }
}

template <class T>
class PyKeyTrains {
 public:
  PyKeyTrains(const xfel::KeyData<T>& data, const PyMap& map) : data_(data), map_(&map) {}
  std::size_t size() const noexcept { return data_.size(); }
  template <class Visit>
  void iterate(const IndexRange& share, Visit&& visit) const {
    walk_trains(
        share, map_, [&](std::size_t i) { return data_.rows_of_train(i); },
        [&](std::size_t i, Array<T> rows) -> py::tuple {
          return py::make_tuple(i, py::module_::import("numpy").attr("uint64")(data_.train_ids()[i]),
                                rows_to_python(AnyRows(std::move(rows)), true));
        },
        visit);
  }

 private:
  const xfel::KeyData<T>& data_;
  const PyMap* map_;
};

// An XfelSource or an XfelRun.
template <class Collection>
class PyTrains {
 public:
  PyTrains(const Collection& collection, const PyMap& map) : collection_(collection), map_(&map) {}
  std::size_t size() const noexcept { return collection_.size(); }
  template <class Visit>
  void iterate(const IndexRange& share, Visit&& visit) const {
    walk_trains(
        share, map_, [&](std::size_t i) { return collection_.read(i); },
        [&](std::size_t i, auto rows) -> py::tuple {
          const py::tuple train = collection_.train_of(i, std::move(rows));
          return py::make_tuple(i, train[0], train[1]);
        },
        visit);
  }

 private:
  const Collection& collection_;
  const PyMap* map_;
};

class Engine;
struct MapRequest;
// Runs `map` over `target` (an XfelKey, XfelSource or XfelRun) on `engine` (for Engine::map).
void map_xfel(Engine& engine, PyMap& map, const py::object& target, const MapRequest& request);
// Adds the XFEL classes and functions (XfelRun, XfelKey, XfelSource, FormatError, lsxfel, ...) to
// the extension module.
void bind_xfel(py::module_& module);

}  // namespace pasha::python

#endif  // PASHA_PYTHON_SRC_XFEL_H_
