// pasha::xfel::DataCollection: a run (or one file) with a selection of sources, keys and trains,
// mappable train by train; how to open one (RunDirectory, H5File) and select from it. See
// functors/xfel/xfel.h for the whole adapter.
#ifndef PASHA_FUNCTORS_XFEL_DATA_COLLECTION_H_
#define PASHA_FUNCTORS_XFEL_DATA_COLLECTION_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "functors/xfel/detail/resolved_key.h"
#include "functors/xfel/detail/rows.h"
#include "functors/xfel/element_type.h"
#include "functors/xfel/format_error.h"
#include "pasha/core/array.h"
#include "pasha/core/functor.h"

namespace pasha::xfel {

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
  // RunDirectory and RunFiles only. False: any unusable file is a FormatError. True (EXtra-data's behaviour):
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
    constexpr ElementType type = element_type_of<T>();
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
  // Copies share the run. Moving is copying: a handle that was moved from stays whole and usable.
  DataCollection(const DataCollection&) = default;
  DataCollection& operator=(const DataCollection&) = default;

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

  // The element type (source, key) is stored as, in the first file that holds it, when the reader
  // reads such a type (integers and floats: what KeyData<T>'s T would be without a conversion);
  // nullopt for others (strings). CONTROL keys may be named without ".value". Throws
  // std::invalid_argument for an unknown (source, key).
  std::optional<ElementType> stored_type(const std::string& source, const std::string& key) const;

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
  friend DataCollection RunFiles(std::vector<std::string> paths, const OpenOptions& options, const std::string& what);
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
// The run files `paths` (in any order; duplicates count once), as one collection: what RunDirectory
// opens, or a part of a run (EXtra-data's collections carry their files). `what` names them in
// errors (a directory, say). Throws FormatError as RunDirectory does.
DataCollection RunFiles(std::vector<std::string> paths, const OpenOptions& options = {}, const std::string& what = "");

}  // namespace pasha::xfel

#endif  // PASHA_FUNCTORS_XFEL_DATA_COLLECTION_H_
