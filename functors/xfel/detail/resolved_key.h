// A key of a run resolved once: the run's sources and trains as read from its files (Run), the
// selection of a collection, and one (source, key) with the files that hold it and how each reads it
// (ResolvedKey). Internal to functors/xfel.
#ifndef PASHA_FUNCTORS_XFEL_DETAIL_RESOLVED_KEY_H_
#define PASHA_FUNCTORS_XFEL_DETAIL_RESOLVED_KEY_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "functors/xfel/element_type.h"
#include "functors/xfel/detail/file_window.h"

namespace pasha::xfel::detail {

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
  std::optional<ElementType> stored_type;  // the element type the first file stores, if numeric
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

}  // namespace pasha::xfel::detail

#endif  // PASHA_FUNCTORS_XFEL_DETAIL_RESOLVED_KEY_H_
