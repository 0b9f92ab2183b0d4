#include "python/src/xfel.h"

#include <pybind11/stl.h>

#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "functors/xfel/lsxfel.h"
#include "python/src/engine.h"
#include "python/src/thread_end.h"

namespace pasha::python {
namespace {

PyObject* format_error_type = nullptr;  // pasha.xfel.FormatError, owned by the module

// A numpy array over `rows`' memory, which the array keeps (with every view of it) until it goes.
// Without the rows' first axis when `entry_only` (a train's single entry).
template <class T>
py::array numpy_of(Array<T>&& rows, bool entry_only) {
  std::vector<py::ssize_t> shape, strides;
  for (std::size_t axis = entry_only ? 1 : 0; axis < rows.ndim(); ++axis) {
    shape.push_back(static_cast<py::ssize_t>(rows.shape()[axis]));
  }
  strides.assign(shape.size(), static_cast<py::ssize_t>(sizeof(T)));
  for (std::size_t axis = shape.size(); axis-- > 1;) strides[axis - 1] = strides[axis] * shape[axis];
  T* data = rows.data();
  auto* kept = new Array<T>(std::move(rows));
  const py::capsule owner(kept, [](void* p) { delete static_cast<Array<T>*>(p); });
  return py::array(py::dtype::of<T>(), shape, strides, data, owner);
}

template <class T>
py::array numpy_copy_of(const std::vector<T>& values) {
  py::array_t<T> array(static_cast<py::ssize_t>(values.size()));
  std::copy(values.begin(), values.end(), array.mutable_data());
  return array;
}

py::tuple tuple_of(const Shape& shape, std::size_t first_axis = 0) {
  py::tuple extents(shape.ndim() - first_axis);
  for (std::size_t axis = first_axis; axis < shape.ndim(); ++axis) {
    extents[axis - first_axis] = py::int_(shape[axis]);
  }
  return extents;
}

std::size_t rows_in(const AnyRows& rows) {
  return std::visit([](const auto& array) { return array.ndim() > 0 ? array.shape()[0] : 0; }, rows);
}

// Reads the numeric keys of one source for one train with `get.template operator()<T>(key)`.
template <class Get>
SourceRows read_keys(const SourceKeys& keys, Get&& get) {
  SourceRows rows;
  rows.reserve(keys.keys.size());
  for (const auto& [key, type] : keys.keys) {
    AnyRows read = xfel::visit_element_type(type, [&]<class T>() { return AnyRows(get.template operator()<T>(key)); });
    if (rows_in(read) == 0) {
      rows.emplace_back(std::nullopt);
    } else {
      rows.emplace_back(std::move(read));
    }
  }
  return rows;
}

py::object numpy_uint64(std::uint64_t value) { return py::module_::import("numpy").attr("uint64")(value); }

// Python's owner of an XfelKey, XfelSource or XfelRun, which deletes it without the GIL: dropping the
// last reference to a run closes its files through HDF5, and HDF5's lock must never be waited for
// with the GIL in hand (an h5py callback, which runs under HDF5's lock, may be waiting for the GIL).
// The bindings that reach HDF5 let go of the GIL for the same reason. (Not while the interpreter is
// finalising: a daemon thread taking the GIL back then would be ended inside this noexcept deletion.)
struct DeleteWithoutGil {
  template <class T>
  void operator()(T* object) const {
    if (PyGILState_Check() != 0 && !interpreter_is_exiting()) {
      GilReleased release;
      delete object;
    } else {
      delete object;
    }
  }
};
template <class T>
using HeldWithoutGil = std::unique_ptr<T, DeleteWithoutGil>;

}  // namespace

void register_format_error(py::module_& module) {
  static py::exception<xfel::FormatError> type(module, "FormatError", PyExc_ValueError);
  type.attr("__module__") = "pasha.xfel";
  type.attr("__doc__") =
      "A European XFEL file that cannot be read as a run file (missing, not HDF5, damaged): the message "
      "names the file and the HDF5 path.";
  format_error_type = type.ptr();
  py::register_exception_translator([](std::exception_ptr error) {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const xfel::FormatError& e) {
      PyErr_SetString(format_error_type, e.what());
    }
  });
}

void raise_format_error(const xfel::FormatError& error, const PyMap* map) {
  PyErr_SetString(format_error_type, error.what());
  if (map != nullptr) map->fail();
  throw py::error_already_set();
}

py::object rows_to_python(AnyRows&& rows, bool squeeze_one) {
  return std::visit(
      [&](auto& array) -> py::object {
        const std::size_t count = array.ndim() > 0 ? array.shape()[0] : 0;
        if (count == 0) return py::none();
        return numpy_of(std::move(array), squeeze_one && count == 1);
      },
      rows);
}

SourceKeys source_keys(const xfel::DataCollection& run, const std::string& source) {
  SourceKeys keys{source, {}};
  for (const std::string& key : run.keys_for_source(source)) {
    if (const std::optional<xfel::ElementType> type = run.stored_type(source, key)) keys.keys.emplace_back(key, *type);
  }
  return keys;
}

py::dict source_dict(const SourceKeys& keys, SourceRows& rows, std::uint64_t train_id) {
  py::dict data;
  for (std::size_t k = 0; k < keys.keys.size(); ++k) {
    if (rows[k]) data[py::str(keys.keys[k].first)] = rows_to_python(std::move(*rows[k]), true);
  }
  py::dict metadata;
  metadata["source"] = keys.source;
  metadata["timestamp.tid"] = py::int_(train_id);
  data["metadata"] = metadata;
  return data;
}

// --- XfelKey ------------------------------------------------------------------------------------

namespace {

AnyKeyData key_data_as_stored(const xfel::DataCollection& run, const std::string& source, const std::string& key) {
  const std::optional<xfel::ElementType> stored = run.stored_type(source, key);
  if (!stored) {
    throw xfel::FormatError(source + " " + key + ": the key is not stored as numbers (strings?); pasha reads "
                            "integer and floating-point keys");
  }
  return xfel::visit_element_type(*stored, [&]<class T>() { return AnyKeyData(run.key_data<T>(source, key)); });
}

}  // namespace

XfelKey::XfelKey(const xfel::DataCollection& run, const std::string& source, const std::string& key)
    : data_(key_data_as_stored(run, source, key)),
      source_(source),
      key_(std::visit([](const auto& data) { return data.key(); }, data_)) {}

py::dtype XfelKey::dtype() const {
  return std::visit(
      []<class T>(const xfel::KeyData<T>&) { return py::dtype::of<T>(); }, data_);
}

py::tuple XfelKey::entry_shape() const {
  return std::visit([](const auto& data) { return tuple_of(data.entry_shape()); }, data_);
}

py::tuple XfelKey::shape() const {
  return std::visit([](const auto& data) { return tuple_of(data.shape()); }, data_);
}

py::array XfelKey::train_ids() const {
  return std::visit([](const auto& data) { return numpy_copy_of(data.train_ids()); }, data_);
}

py::array XfelKey::data_counts() const {
  return std::visit([](const auto& data) { return numpy_copy_of(data.data_counts()); }, data_);
}

py::array XfelKey::train_id_coordinates() const {
  return std::visit([](const auto& data) { return numpy_copy_of(data.train_id_coordinates()); }, data_);
}

py::array XfelKey::ndarray() const {
  AnyRows all = [&] {
    GilReleased release;
    return std::visit([](const auto& data) { return AnyRows(data.ndarray()); }, data_);
  }();
  return std::visit([](auto& array) -> py::array { return numpy_of(std::move(array), false); }, all);
}

XfelKey XfelKey::select_trains(const xfel::TrainSelection& selection) const {
  return XfelKey(std::visit([&](const auto& data) { return AnyKeyData(data.select_trains(selection)); }, data_),
                 source_, key_);
}

std::size_t XfelKey::size() const {
  return std::visit([](const auto& data) { return data.size(); }, data_);
}

py::tuple XfelKey::train(std::size_t index, bool keep_dims) const {
  if (index >= size()) throw py::index_error("train index " + std::to_string(index) + " out of range");
  AnyRows rows = [&] {
    GilReleased release;
    return std::visit([&](const auto& data) { return AnyRows(data.rows_of_train(index)); }, data_);
  }();
  const std::uint64_t train_id = std::visit([&](const auto& data) { return data.train_ids()[index]; }, data_);
  if (keep_dims) {
    return py::make_tuple(numpy_uint64(train_id), std::visit([](auto& array) -> py::object {
                            return numpy_of(std::move(array), false);
                          }, rows));
  }
  return py::make_tuple(numpy_uint64(train_id), rows_to_python(std::move(rows), true));
}

void XfelKey::close() const {
  std::visit([](const auto& data) { data.close(); }, data_);
}

// --- XfelSource ---------------------------------------------------------------------------------

XfelSource::XfelSource(const xfel::DataCollection& run, const std::string& source)
    : run_(run), data_(run.source_data(source)), keys_(source_keys(run, source)) {}

py::array XfelSource::train_ids() const { return numpy_copy_of(data_.train_ids()); }

XfelSource XfelSource::select_trains(const xfel::TrainSelection& selection) const {
  return XfelSource(run_.select_trains(selection), source());
}

SourceRows XfelSource::read(std::size_t index) const {
  SourceRows rows;
  data_.iterate(IndexRange{index, index + 1}, [&](std::size_t, std::uint64_t, const xfel::SourceTrain& train) {
    rows = read_keys(keys_, [&]<class T>(const std::string& key) { return train.get<T>(key); });
  });
  return rows;
}

py::tuple XfelSource::train_of(std::size_t index, SourceRows rows) const {
  const std::uint64_t train_id = data_.train_ids()[index];
  return py::make_tuple(py::int_(train_id), source_dict(keys_, rows, train_id));
}

py::tuple XfelSource::train(std::size_t index) const {
  if (index >= size()) throw py::index_error("train index " + std::to_string(index) + " out of range");
  SourceRows rows = [&] {
    GilReleased release;
    return read(index);
  }();
  return train_of(index, std::move(rows));
}

// --- XfelRun ------------------------------------------------------------------------------------

XfelRun::XfelRun(xfel::DataCollection run) : run_(std::move(run)) {
  for (const std::string& source : run_.all_sources()) sources_.push_back(source_keys(run_, source));
}

py::array XfelRun::train_ids() const { return numpy_copy_of(run_.train_ids()); }

std::vector<SourceRows> XfelRun::read(std::size_t index) const {
  std::vector<SourceRows> rows;
  run_.iterate(IndexRange{index, index + 1}, [&](std::size_t, std::uint64_t, const xfel::TrainData& train) {
    for (const SourceKeys& source : sources_) {
      rows.push_back(
          read_keys(source, [&]<class T>(const std::string& key) { return train.get<T>(source.source, key); }));
    }
  });
  return rows;
}

py::tuple XfelRun::train_of(std::size_t index, std::vector<SourceRows> rows) const {
  const std::uint64_t train_id = run_.train_ids()[index];
  py::dict data;
  for (std::size_t s = 0; s < sources_.size(); ++s) {
    data[py::str(sources_[s].source)] = source_dict(sources_[s], rows[s], train_id);
  }
  return py::make_tuple(py::int_(train_id), data);
}

py::tuple XfelRun::train(std::size_t index) const {
  if (index >= size()) throw py::index_error("train index " + std::to_string(index) + " out of range");
  std::vector<SourceRows> rows = [&] {
    GilReleased release;
    return read(index);
  }();
  return train_of(index, std::move(rows));
}

// --- Maps and bindings --------------------------------------------------------------------------

void map_xfel(Engine& engine, PyMap& map, const py::object& target, const MapRequest& request) {
  if (py::isinstance<XfelKey>(target)) {
    std::visit(
        [&](const auto& data) {
          PyKeyTrains walk(data, map);
          engine.run(walk, map, request);
        },
        target.cast<const XfelKey&>().data());
  } else if (py::isinstance<XfelSource>(target)) {
    PyTrains<XfelSource> walk(target.cast<const XfelSource&>(), map);
    engine.run(walk, map, request);
  } else {
    PyTrains<XfelRun> walk(target.cast<const XfelRun&>(), map);
    engine.run(walk, map, request);
  }
}

void bind_xfel(py::module_& m) {
  register_format_error(m);

  py::class_<xfel::TrainSelection>(m, "XfelTrains", "Which trains select_trains keeps (internal).")
      .def_static("by_index", [](std::size_t begin, std::size_t end) { return xfel::by_index(begin, end); })
      .def_static("by_id_range", [](std::uint64_t begin, std::uint64_t end) { return xfel::by_id(begin, end); })
      .def_static("by_ids", [](std::vector<std::uint64_t> ids) { return xfel::by_id(std::move(ids)); });

  py::class_<XfelKey, HeldWithoutGil<XfelKey>>(m, "XfelKey", "One key of one source over a run's trains (internal: pasha.xfel.KeyData).")
      .def_property_readonly("source", &XfelKey::source)
      .def_property_readonly("key", &XfelKey::key)
      .def_property_readonly("dtype", &XfelKey::dtype)
      .def_property_readonly("entry_shape", &XfelKey::entry_shape)
      .def_property_readonly("shape", &XfelKey::shape)
      .def_property_readonly("train_ids", &XfelKey::train_ids)
      .def("data_counts", &XfelKey::data_counts)
      .def("train_id_coordinates", &XfelKey::train_id_coordinates)
      .def("ndarray", &XfelKey::ndarray)
      .def("select_trains", &XfelKey::select_trains, py::call_guard<GilReleased>())
      .def("__len__", &XfelKey::size)
      .def("train", &XfelKey::train, py::arg("index"), py::arg("keep_dims") = false)
      .def("close", &XfelKey::close, py::call_guard<GilReleased>());

  py::class_<XfelSource, HeldWithoutGil<XfelSource>>(m, "XfelSource", "One source over a run's trains (internal: pasha.xfel.SourceData).")
      .def_property_readonly("source", &XfelSource::source)
      .def_property_readonly("keys", &XfelSource::keys)
      .def_property_readonly("train_ids", &XfelSource::train_ids)
      .def("select_trains", &XfelSource::select_trains, py::call_guard<GilReleased>())
      .def("__len__", &XfelSource::size)
      .def("train", &XfelSource::train);

  py::class_<XfelRun, HeldWithoutGil<XfelRun>>(m, "XfelRun", "A run with a selection (internal: pasha.xfel.DataCollection).")
      .def_property_readonly("train_ids", &XfelRun::train_ids)
      .def_property_readonly("files", [](const XfelRun& r) { return r.run().files(); })
      .def_property_readonly("skipped_files", [](const XfelRun& r) { return r.run().skipped_files(); })
      .def_property_readonly("all_sources", [](const XfelRun& r) { return r.run().all_sources(); })
      .def_property_readonly("control_sources", [](const XfelRun& r) { return r.run().control_sources(); })
      .def_property_readonly("instrument_sources", [](const XfelRun& r) { return r.run().instrument_sources(); })
      .def(
          "keys_for_source",
          [](const XfelRun& r, const std::string& source) { return r.run().keys_for_source(source); }, py::call_guard<GilReleased>())
      .def(
          "index_groups", [](const XfelRun& r, const std::string& source) { return r.run().index_groups(source); },
          py::call_guard<GilReleased>())
      .def("data_counts",
           [](const XfelRun& r, const std::string& source, const std::string& key) {
             const std::vector<std::uint64_t> counts = [&] {
               GilReleased release;
               return r.run().data_counts(source, key);
             }();
             return numpy_copy_of(counts);
           })
      .def(
          "stored_type",
          [](const XfelRun& r, const std::string& source, const std::string& key) -> std::optional<std::string> {
            const std::optional<xfel::ElementType> type = r.run().stored_type(source, key);
            if (!type) return std::nullopt;
            return std::string(xfel::element_type_name(*type));
          },
          py::call_guard<GilReleased>())
      .def(
          "select",
          [](const XfelRun& r, const std::vector<std::pair<std::string, std::string>>& patterns) {
            return XfelRun(r.run().select(patterns));
          },
          py::call_guard<GilReleased>())
      .def(
          "select_trains",
          [](const XfelRun& r, const xfel::TrainSelection& selection) {
            return XfelRun(r.run().select_trains(selection));
          },
          py::call_guard<GilReleased>())
      .def(
          "key",
          [](const XfelRun& r, const std::string& source, const std::string& key) {
            return XfelKey(r.run(), source, key);
          },
          py::call_guard<GilReleased>())
      .def(
          "source", [](const XfelRun& r, const std::string& source) { return XfelSource(r.run(), source); }, py::call_guard<GilReleased>())
      .def("__len__", &XfelRun::size)
      .def("train", &XfelRun::train)
      .def("close", [](const XfelRun& r) { r.run().close(); }, py::call_guard<GilReleased>());

  m.def(
      "xfel_run_directory",
      [](const std::string& path, bool inc_suspect_trains, bool skip_unreadable_files) {
        GilReleased release;
        return XfelRun(xfel::RunDirectory(
            path, {.inc_suspect_trains = inc_suspect_trains, .skip_unreadable_files = skip_unreadable_files}));
      },
      py::arg("path"), py::arg("inc_suspect_trains"), py::arg("skip_unreadable_files"));
  m.def(
      "xfel_run_files",
      [](const std::vector<std::string>& paths, bool inc_suspect_trains, bool skip_unreadable_files) {
        GilReleased release;
        return XfelRun(xfel::RunFiles(
            paths, {.inc_suspect_trains = inc_suspect_trains, .skip_unreadable_files = skip_unreadable_files}));
      },
      py::arg("paths"), py::arg("inc_suspect_trains"), py::arg("skip_unreadable_files"));
  m.def(
      "xfel_h5file",
      [](const std::string& path, bool inc_suspect_trains) {
        GilReleased release;
        return XfelRun(xfel::H5File(path, {.inc_suspect_trains = inc_suspect_trains}));
      },
      py::arg("path"), py::arg("inc_suspect_trains"));
  m.def(
      "lsxfel",
      [](const std::vector<std::string>& args) {
        GilReleased release;
        return xfel::lsxfel(args, pasha::default_context());
      },
      py::arg("args"), "The lsxfel command (functors/xfel/lsxfel.h); returns its exit status.");
}

}  // namespace pasha::python
