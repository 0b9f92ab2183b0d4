// pasha::xfel: European XFEL run files (HDF5) as pasha functors, after EXtra-data.
//
//   pasha::xfel::DataCollection run = pasha::xfel::RunDirectory("/gpfs/exfel/exp/.../raw/r0450");
//   auto kd = run.key_data<std::uint16_t>("FXE_XAD_GEC/CAM/CAMERA:daqOutput", "data.image.pixels");
//   pasha::map([&](int worker_id, std::size_t index, std::uint64_t train_id, pasha::Array<std::uint16_t> rows) {
//     ...  // rows: this train's entries, shape (count, entry_shape...); count may be 0
//   }, kd);
//
// A DataCollection is a set of run files plus a selection of sources, keys and trains. Mapping a
// DataCollection calls kernel(worker_id, index, train_id, const TrainData&); mapping a KeyData<T>
// calls kernel(worker_id, index, train_id, pasha::Array<T> rows); mapping a SourceData calls
// kernel(worker_id, index, train_id, const SourceTrain&). Every train of train_ids() is visited
// exactly once, `index` being its position in train_ids(), including trains where a source has no
// data (zero rows).
//
// Reading: a key is resolved once (which files hold it, their datasets, shapes and types) and
// validated once for the trains selected when its KeyData is made. A KeyData map reads each train with
// one read into a buffer each worker reuses: `rows` is valid during the kernel call (copy what you
// keep). Datasets stored contiguously and uncompressed in the type asked for (what the DAQ writes for
// most detector and camera data) are read straight from the file (pread at the offset HDF5 reports),
// with no lock, so threads read in parallel; chunked, compressed or converted data goes through HDF5,
// one call at a time (Debian's thread-safe HDF5 takes one global lock anyway).
//
// Files and processes: a collection reads each file's metadata when it is built and closes it; data
// reads open files lazily and keep them open until close() or until the last copy of the collection
// goes. Handles are per process: in a ProcessContext each worker opens its own.
//
// Thread-safety: collections and key data are immutable values; reading from several threads or
// processes at once is allowed. pasha's HDF5 calls take one process-wide lock, which is fork-safe: a
// process context's worker never inherits HDF5 in the middle of a call.
//
// Errors: bad input (missing paths, non-HDF5 files, missing INDEX/METADATA, counts past a dataset's
// end, duplicated trains, unconvertible types) throws pasha::xfel::FormatError naming the file and
// HDF5 path. Misuse (unknown source or key, a glob that matches nothing) throws std::invalid_argument.
#ifndef PASHA_FUNCTORS_XFEL_XFEL_H_
#define PASHA_FUNCTORS_XFEL_XFEL_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "functors/xfel/detail/element_type.h"
#include "functors/xfel/detail/file_window.h"
#include "functors/xfel/format_error.h"
#include "pasha/array.h"
#include "pasha/functor.h"

namespace pasha::xfel {

namespace detail {

class RunFile;
class ResolvedKey;

// Where the rows of one (source, index group) are for one train: file -1 means no file has them.
struct Location {
  std::int32_t file = -1;
  std::uint64_t first = 0;
  std::uint64_t count = 0;
};

struct KeyInfo {
  std::string group;                     // index group: "" for CONTROL keys
  std::vector<std::size_t> entry_shape;  // dataset shape without the row axis, from the first file
};

struct SourceInfo {
  bool control = false;
  std::vector<std::int32_t> files;                      // files that hold the source
  std::map<std::string, KeyInfo> keys;                  // every key of the source in any file
  std::map<std::string, std::vector<Location>> groups;  // per index group, per train of the run
};

// Everything read from a run's files; shared, immutable after construction but for the cache of
// resolved keys.
struct Run {
  std::vector<std::shared_ptr<RunFile>> files;
  std::vector<std::uint64_t> train_ids;  // sorted union of the files' train ids
  std::map<std::string, SourceInfo> sources;

  // (source, stored key) resolved, made on first use and kept (under the HDF5 lock).
  std::shared_ptr<const ResolvedKey> resolve(const std::string& source, const std::string& key) const;
  mutable std::map<std::pair<std::string, std::string>, std::shared_ptr<const ResolvedKey>> resolved;
};

// source -> selected keys (sorted).
using Selection = std::map<std::string, std::vector<std::string>>;

// The stored name of (source, key) in `selection`: `key`, or `key + ".value"` for a CONTROL key named
// without it; nullopt when (source, key) is not selected.
std::optional<std::string> stored_key(const Run& run, const Selection& selection, const std::string& source,
                                      const std::string& key);
// The same, throwing std::invalid_argument naming the source or key that is not selected.
std::string stored_key_or_throw(const Run& run, const Selection& selection, const std::string& source,
                                const std::string& key);

// One (source, key) of a run, resolved once: the files that hold it, their datasets, and per element
// type whether a file's rows can be read without HDF5. Immutable but for that per-type knowledge,
// which is filled in (lock-free, idempotently) as types are asked for.
class ResolvedKey {
 public:
  ResolvedKey(const Run& run, const std::string& source, const std::string& key);

  const std::vector<std::size_t>& entry_shape() const noexcept { return info_->entry_shape; }
  std::size_t row_elements() const noexcept { return row_elements_; }
  const Location& location(std::size_t position) const noexcept { return (*locations_)[position]; }

  // Throws FormatError naming the file and dataset unless the rows of these run positions exist
  // and their files read the key as `type`.
  void validate(const std::vector<std::size_t>& positions, ElementType type) const;
  void validate(std::size_t position, ElementType type) const;

  // Reads the rows of `loc` (validated for `type`) as `type` into `out`: one pread, or one HDF5 read.
  void read(const Location& loc, ElementType type, void* out) const;
  // The rows of `loc` (validated for `type`) mapped into `window` when they are stored as `type`
  // and span at least FileWindow::min_bytes(); nullptr when they must be read instead.
  void* map(const Location& loc, ElementType type, FileWindow& window) const;

 private:
  // What is known of one file for one type: not yet asked, readable through HDF5, readable raw.
  enum : std::uint8_t { kUnknown = 0, kThroughHdf5 = 1, kRaw = 2 };
  struct PerType {
    std::atomic<std::uint8_t> state{kUnknown};
    std::uint64_t offset = 0;  // of the dataset's data, when raw
  };
  struct PerFile {
    const RunFile* file = nullptr;
    const void* key = nullptr;  // the file's RunFile::Key, null when the file lacks the key
    std::array<PerType, kNumElementTypes> types;
  };

  void check_location(const Location& loc) const;
  const PerType& prepared(std::int32_t file, ElementType type) const;

  const Run& run_;
  std::string source_;
  std::string key_;
  const KeyInfo* info_ = nullptr;
  const std::vector<Location>* locations_ = nullptr;
  std::size_t row_elements_ = 1;
  std::unique_ptr<PerFile[]> files_;  // by run file index
};

// The buffer one iterate call reads rows into: the calling thread's (in a worker process, the
// worker's), reused from call to call, one per nesting level, so that a map started from inside a
// kernel never overwrites the rows the outer kernel is looking at.
class RowsBuffer {
 public:
  RowsBuffer() noexcept : level_(depth()++) {}
  ~RowsBuffer() { --depth(); }
  RowsBuffer(const RowsBuffer&) = delete;
  RowsBuffer& operator=(const RowsBuffer&) = delete;

  template <class T>
  T* get(std::size_t elements) {
    static_assert(alignof(T) <= alignof(std::max_align_t));
    return static_cast<T*>(bytes(elements * sizeof(T)));
  }

 private:
  struct Buffer {
    std::unique_ptr<std::max_align_t[]> memory;
    std::size_t bytes = 0;
  };
  static std::size_t& depth() noexcept {
    thread_local std::size_t depth = 0;
    return depth;
  }
  void* bytes(std::size_t n) {
    thread_local std::vector<Buffer> buffers;
    if (buffers.size() <= level_) buffers.resize(level_ + 1);
    Buffer& buffer = buffers[level_];
    if (n > buffer.bytes) {
      buffer.memory.reset(new std::max_align_t[(n + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t)]);
      buffer.bytes = n;
    }
    return buffer.memory.get();
  }
  std::size_t level_;
};

// A contiguous heap array of `shape` for one train's rows or a bulk read.
template <class T>
Array<T> heap_array(const Shape& shape) {
  const std::size_t n = shape.num_elements();
  std::shared_ptr<T[]> memory(new T[n == 0 ? 1 : n]);
  T* data = memory.get();
  return Array<T>(std::shared_ptr<void>(memory, data), data, shape, Order::C);
}

inline Shape rows_shape(std::uint64_t count, const std::vector<std::size_t>& entry_shape) {
  Shape shape{static_cast<std::size_t>(count)};
  for (std::size_t e : entry_shape) shape.insert(shape.ndim(), e);
  return shape;
}

}  // namespace detail

// Which trains select_trains keeps; build one with by_index or by_id.
class TrainSelection {
 public:
  enum class Kind { index_range, id_range, id_list };
  Kind kind() const noexcept { return kind_; }
  std::uint64_t begin() const noexcept { return begin_; }
  std::uint64_t end() const noexcept { return end_; }
  const std::vector<std::uint64_t>& ids() const noexcept { return ids_; }

 private:
  friend TrainSelection by_index(std::size_t begin, std::size_t end);
  friend TrainSelection by_id(std::uint64_t begin, std::uint64_t end);
  friend TrainSelection by_id(std::vector<std::uint64_t> ids);
  Kind kind_ = Kind::index_range;
  std::uint64_t begin_ = 0, end_ = 0;
  std::vector<std::uint64_t> ids_;
};

// Positions [begin, end) of the collection's train_ids(), clipped to its size (like a slice).
TrainSelection by_index(std::size_t begin, std::size_t end);
// Train ids in [begin, end); they need not exist. A range outside the run selects no trains.
TrainSelection by_id(std::uint64_t begin, std::uint64_t end);
// The listed train ids that the collection has (sorted intersection).
TrainSelection by_id(std::vector<std::uint64_t> ids);

struct OpenOptions {
  // True (EXtra-data's default): every non-zero train id counts. False: trains flagged as suspect
  // (INDEX/flag, or guessed for format 0.5) are left out everywhere.
  bool inc_suspect_trains = true;
  // RunDirectory only. False: any unusable file is a FormatError. True (EXtra-data's behaviour):
  // unusable files are skipped (see DataCollection::skipped_files); it fails only if none is usable.
  bool skip_unreadable_files = false;
};

template <class T>
class KeyData;

// The data of one train for the selected sources and keys; what a kernel mapped over a
// DataCollection receives. Valid during the kernel call (it refers to the collection).
class TrainData {
 public:
  std::uint64_t train_id() const noexcept { return train_id_; }
  // True when (source, key) is selected and has at least one row in this train.
  bool has(const std::string& source, const std::string& key) const;
  // This train's rows of (source, key): shape (count, entry_shape...), count possibly 0. CONTROL keys
  // may be named without ".value". Throws std::invalid_argument when (source, key) is not selected,
  // FormatError when the file cannot be read as T.
  template <class T>
  Array<T> get(const std::string& source, const std::string& key) const {
    return read<T>(*run_->resolve(source, detail::stored_key_or_throw(*run_, *selection_, source, key)), position_);
  }

  // This train's rows of a resolved key, in a new array; validated for T.
  template <class T>
  static Array<T> read(const detail::ResolvedKey& resolved, std::size_t position) {
    constexpr detail::ElementType type = detail::element_type_of<T>();
    resolved.validate(position, type);
    const detail::Location& loc = resolved.location(position);
    Array<T> rows = detail::heap_array<T>(detail::rows_shape(loc.count, resolved.entry_shape()));
    if (loc.count > 0) resolved.read(loc, type, rows.data());
    return rows;
  }

 private:
  friend class DataCollection;
  TrainData(const detail::Run* run, const detail::Selection* selection, std::size_t position, std::uint64_t train_id)
      : run_(run), selection_(selection), position_(position), train_id_(train_id) {}

  const detail::Run* run_;
  const detail::Selection* selection_;
  std::size_t position_;  // in run_->train_ids
  std::uint64_t train_id_;
};

class SourceData;

// A run (or one file) with a selection of sources, keys and trains. Cheap to copy (shares the run).
// An indexed pasha functor: kernel(worker_id, index, train_id, const TrainData&).
class DataCollection {
 public:
  const std::vector<std::uint64_t>& train_ids() const noexcept { return train_ids_; }
  // The files of the run, sorted by path.
  std::vector<std::string> files() const;
  // Files RunDirectory skipped with OpenOptions::skip_unreadable_files, each with the reason.
  const std::vector<std::pair<std::string, std::string>>& skipped_files() const noexcept { return *skipped_; }

  std::vector<std::string> all_sources() const;
  std::vector<std::string> control_sources() const;
  std::vector<std::string> instrument_sources() const;
  // The selected keys of `source`, sorted; CONTROL keys as "x.value" and "x.timestamp".
  // Throws std::invalid_argument for a source that is not selected.
  std::vector<std::string> keys_for_source(const std::string& source) const;
  // The index groups of a source ("" for CONTROL sources).
  std::vector<std::string> index_groups(const std::string& source) const;

  // Sources matching `source_glob` and, of those, keys matching `key_glob` (fnmatch globs, where *
  // also matches '/' and '.'). Throws std::invalid_argument when nothing matches.
  DataCollection select(std::string_view source_glob, std::string_view key_glob = "*") const;
  // The union of several (source glob, key glob) pairs.
  DataCollection select(const std::vector<std::pair<std::string, std::string>>& patterns) const;
  DataCollection select_trains(const TrainSelection& selection) const;

  // One key as an array-like view over the selected trains. CONTROL keys may be named without
  // ".value". Throws std::invalid_argument for an unknown (source, key), FormatError when the key's
  // files disagree, have too few rows, or store a type HDF5 cannot convert to T.
  template <class T>
  KeyData<T> key_data(const std::string& source, const std::string& key) const;

  // One source over the collection's trains, with every selected key (EXtra-data's run[source]).
  // Throws std::invalid_argument for a source that is not selected.
  SourceData source_data(const std::string& source) const;

  // Per-train counts of a (source, index group) pair, aligned with train_ids().
  std::vector<std::uint64_t> data_counts(const std::string& source, const std::string& key) const;

  // Closes the HDF5 handles this process opened for the run's files; later reads reopen them.
  void close() const;

  // Functor interface. Kernel exceptions unwind through iterate.
  static constexpr bool pasha_exceptions_pass_through = true;
  std::size_t size() const noexcept { return train_ids_.size(); }
  template <class Visit>
  void iterate(const IndexRange& share, Visit&& visit) const {
    for (std::size_t i = share.begin; i < share.end; ++i) {
      const TrainData data(run_.get(), selection_.get(), positions_[i], train_ids_[i]);
      visit(i, train_ids_[i], data);
    }
  }

 private:
  friend DataCollection RunDirectory(const std::string& path, const OpenOptions& options);
  friend DataCollection H5File(const std::string& path, const OpenOptions& options);
  template <class T>
  friend class KeyData;
  friend class SourceData;
  friend class SourceTrain;

  DataCollection() = default;
  static DataCollection from_files(std::vector<std::shared_ptr<detail::RunFile>> files, const OpenOptions& options,
                                   std::vector<std::pair<std::string, std::string>> skipped);
  DataCollection with_positions(std::vector<std::size_t> positions) const;

  std::shared_ptr<const detail::Run> run_;
  std::shared_ptr<const detail::Selection> selection_;
  std::shared_ptr<const std::vector<std::pair<std::string, std::string>>> skipped_;
  std::vector<std::size_t> positions_;  // selected trains, as positions in run_->train_ids
  std::vector<std::uint64_t> train_ids_;
};

// Every *.h5 file in `path` (not overview.h5, not recursing). Throws FormatError when the directory
// is missing or has no usable run file.
DataCollection RunDirectory(const std::string& path, const OpenOptions& options = {});
// One run file.
DataCollection H5File(const std::string& path, const OpenOptions& options = {});

// One key of one source over the collection's trains, read as T (HDF5 converts the stored type).
// An indexed pasha functor: kernel(worker_id, index, train_id, pasha::Array<T> rows), `rows` a view of
// the worker's reused buffer (or, for large rows stored raw, of a private mapping of the file), valid
// during the call; the kernel may write to it without changing the file.
template <class T>
class KeyData {
 public:
  const std::string& source() const noexcept { return source_; }
  const std::string& key() const noexcept { return key_; }
  const std::vector<std::uint64_t>& train_ids() const noexcept { return collection_.train_ids(); }
  // Shape of one row.
  Shape entry_shape() const { return Shape(resolved_->entry_shape()); }
  // (sum of counts,) + entry_shape.
  Shape shape() const { return detail::rows_shape(total_rows(), resolved_->entry_shape()); }
  std::size_t ndim() const { return resolved_->entry_shape().size() + 1; }
  // Rows per train, aligned with train_ids().
  std::vector<std::uint64_t> data_counts() const {
    std::vector<std::uint64_t> counts(size());
    for (std::size_t i = 0; i < size(); ++i) counts[i] = location(i).count;
    return counts;
  }
  // Train ids repeated by their counts: the train of each row of ndarray().
  std::vector<std::uint64_t> train_id_coordinates() const {
    std::vector<std::uint64_t> ids;
    for (std::size_t i = 0; i < size(); ++i) ids.insert(ids.end(), location(i).count, train_ids()[i]);
    return ids;
  }
  // All selected rows, in train order, in one new array. Consecutive rows of one file are read
  // together.
  Array<T> ndarray() const {
    Array<T> all = detail::heap_array<T>(shape());
    const std::size_t row_elements = resolved_->row_elements();
    std::size_t row = 0;
    detail::Location pending;
    std::size_t pending_row = 0;
    auto flush = [&] {
      if (pending.count > 0) resolved_->read(pending, kType, all.data() + pending_row * row_elements);
    };
    for (std::size_t i = 0; i < size(); ++i) {
      const detail::Location& loc = location(i);
      if (loc.count == 0) continue;
      if (pending.count > 0 && loc.file == pending.file && loc.first == pending.first + pending.count) {
        pending.count += loc.count;
      } else {
        flush();
        pending = loc;
        pending_row = row;
      }
      row += loc.count;
    }
    flush();
    return all;
  }
  KeyData select_trains(const TrainSelection& selection) const {
    return KeyData(collection_.select_trains(selection), source_, key_);
  }
  // Closes the HDF5 handles and descriptors this process opened; later reads reopen them.
  void close() const { collection_.close(); }

  // Functor interface. Kernel exceptions unwind through iterate.
  static constexpr bool pasha_exceptions_pass_through = true;
  std::size_t size() const noexcept { return collection_.size(); }
  template <class Visit>
  void iterate(const IndexRange& share, Visit&& visit) const {
    const std::size_t row_elements = resolved_->row_elements();
    detail::FileWindow window;  // large rows are mapped, not copied; unmapped on the way out
    detail::RowsBuffer buffer;  // the others are read into this
    for (std::size_t i = share.begin; i < share.end; ++i) {
      const detail::Location& loc = location(i);
      T* rows = static_cast<T*>(resolved_->map(loc, kType, window));
      if (rows == nullptr) {
        rows = buffer.get<T>(static_cast<std::size_t>(loc.count) * row_elements);
        if (loc.count > 0) resolved_->read(loc, kType, rows);
      }
      visit(i, collection_.train_ids_[i],
            Array<T>(nullptr, rows, detail::rows_shape(loc.count, resolved_->entry_shape()), Order::C));
    }
  }

 private:
  friend class DataCollection;
  static constexpr detail::ElementType kType = detail::element_type_of<T>();

  // Resolves the key and validates every selected train's rows and files for T, once.
  KeyData(DataCollection collection, std::string source, std::string key)
      : collection_(std::move(collection)),
        source_(std::move(source)),
        key_(std::move(key)),
        resolved_(collection_.run_->resolve(source_, key_)) {
    resolved_->validate(collection_.positions_, kType);
  }
  const detail::Location& location(std::size_t i) const { return resolved_->location(collection_.positions_[i]); }
  std::uint64_t total_rows() const {
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < size(); ++i) n += location(i).count;
    return n;
  }

  DataCollection collection_;
  std::string source_;
  std::string key_;
  std::shared_ptr<const detail::ResolvedKey> resolved_;
};

template <class T>
KeyData<T> DataCollection::key_data(const std::string& source, const std::string& key) const {
  return KeyData<T>(*this, source, detail::stored_key_or_throw(*run_, *selection_, source, key));
}

// One train of one source: what a kernel mapped over a SourceData receives. Valid during the call.
class SourceTrain {
 public:
  std::uint64_t train_id() const noexcept { return train_id_; }
  const std::string& source() const noexcept;
  // The selected keys of the source (CONTROL keys as "x.value" and "x.timestamp").
  const std::vector<std::string>& keys() const noexcept;
  // True when `key` is selected and has at least one row in this train.
  bool has(const std::string& key) const;
  // This train's rows of `key`, in a new array: shape (count, entry_shape...), count possibly 0.
  // CONTROL keys may be named without ".value". Throws std::invalid_argument for a key that is not
  // selected, FormatError when the file cannot be read as T.
  template <class T>
  Array<T> get(const std::string& key) const {
    return TrainData::read<T>(resolved(key), position_);
  }

 private:
  friend class SourceData;
  SourceTrain(const SourceData* data, std::size_t position, std::uint64_t train_id)
      : data_(data), position_(position), train_id_(train_id) {}
  const detail::ResolvedKey& resolved(const std::string& key) const;

  const SourceData* data_;
  std::size_t position_;
  std::uint64_t train_id_;
};

// One source over a collection's trains, with every selected key resolved once (EXtra-data's
// run[source]). An indexed pasha functor: kernel(worker_id, index, train_id, const SourceTrain&).
class SourceData {
 public:
  const std::string& source() const noexcept { return source_; }
  const std::vector<std::string>& keys() const noexcept { return keys_; }
  const std::vector<std::uint64_t>& train_ids() const noexcept { return collection_.train_ids(); }
  SourceData select_trains(const TrainSelection& selection) const {
    return SourceData(collection_.select_trains(selection), source_);
  }

  // Functor interface. Kernel exceptions unwind through iterate.
  static constexpr bool pasha_exceptions_pass_through = true;
  std::size_t size() const noexcept { return collection_.size(); }
  template <class Visit>
  void iterate(const IndexRange& share, Visit&& visit) const {
    for (std::size_t i = share.begin; i < share.end; ++i) {
      const SourceTrain train(this, collection_.positions_[i], collection_.train_ids_[i]);
      visit(i, collection_.train_ids_[i], train);
    }
  }

 private:
  friend class DataCollection;
  friend class SourceTrain;
  SourceData(DataCollection collection, std::string source);

  DataCollection collection_;
  std::string source_;
  std::vector<std::string> keys_;
  std::map<std::string, std::shared_ptr<const detail::ResolvedKey>> resolved_;  // by stored key
};

}  // namespace pasha::xfel

#endif  // PASHA_FUNCTORS_XFEL_XFEL_H_
