// RunFile: what the XFEL reader knows about one run file (metadata read once, when opened), and
// the lazily opened HDF5 handles used to read its data. Internal to pasha.
//
// Handles and fork: the file is opened for the metadata and closed again; data reads open it
// lazily and keep the handles until close() or destruction. Handles remember the process that
// opened them: a forked child never reads through its parent's handles; it closes its inherited
// copies and opens the file again.
//
// Thread-safety: the metadata is immutable after open(); read() and close() may be called from
// several threads at once.
#ifndef PASHA_FUNCTORS_XFEL_DETAIL_RUN_FILE_H_
#define PASHA_FUNCTORS_XFEL_DETAIL_RUN_FILE_H_

#include <hdf5.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "functors/xfel/detail/element_type.h"

namespace pasha::xfel::detail {

class RunFile {
 public:
  // first/count of one index group, [:N] (N = number of non-zero train ids).
  struct IndexGroup {
    std::vector<std::uint64_t> first;
    std::vector<std::uint64_t> count;
  };
  // One key: its dataset and its full shape (rows first) in this file.
  struct Key {
    std::string dataset;
    std::string group;  // the index group; "" for CONTROL keys
    std::vector<std::uint64_t> dims;
  };
  struct Source {
    bool control = false;
    std::map<std::string, IndexGroup> groups;
    std::map<std::string, Key> keys;
  };

  // Reads the file's metadata and index. Throws FormatError naming the file (and HDF5 path) when the
  // file is missing, is not HDF5, or lacks what a run file must have.
  static std::shared_ptr<RunFile> open(const std::string& path);

  ~RunFile();
  RunFile(const RunFile&) = delete;
  RunFile& operator=(const RunFile&) = delete;

  const std::string& path() const noexcept { return path_; }
  // "0.5", "1.0", ... as stored ("0.5" when METADATA/dataFormatVersion is missing).
  const std::string& format_version() const noexcept { return version_; }
  // The non-zero train ids, in file order, and whether each is valid (INDEX/flag, or guessed).
  const std::vector<std::uint64_t>& train_ids() const noexcept { return train_ids_; }
  const std::vector<bool>& valid() const noexcept { return valid_; }
  const std::map<std::string, Source>& sources() const noexcept { return sources_; }

  // Reads rows [first, first + count) of `key` as `type` into `out` (count * prod(entry_shape)
  // elements); throws FormatError naming the file and dataset when they cannot be read.
  void read(const Key& key, std::uint64_t first, std::uint64_t count, const std::vector<std::size_t>& entry_shape,
            ElementType type, void* out) const;
  // Throws FormatError unless `key` can be read as `type`.
  void check_readable(const Key& key, ElementType type) const;
  // Closes the handles this process opened; the next read reopens them.
  void close() const;

 private:
  explicit RunFile(std::string path) : path_(std::move(path)) {}
  void load();
  // The file id for this process, opened on first use. Caller holds mutex_.
  hid_t file_handle_locked() const;
  hid_t dataset_handle_locked(const std::string& dataset) const;
  void drop_handles_locked(bool close) const;

  std::string path_;
  std::string version_;
  std::vector<std::uint64_t> train_ids_;
  std::vector<bool> valid_;
  std::map<std::string, Source> sources_;

  mutable std::mutex mutex_;
  mutable pid_t owner_pid_ = 0;
  mutable hid_t file_ = H5I_INVALID_HID;
  mutable std::map<std::string, hid_t> datasets_;
};

// Which valid flags a format-0.5 file's train ids get: EXtra-data's guess from where the ids
// descend. Exposed for tests.
std::vector<bool> guess_valid_train_ids(const std::vector<std::uint64_t>& train_ids);

}  // namespace pasha::xfel::detail

#endif  // PASHA_FUNCTORS_XFEL_DETAIL_RUN_FILE_H_
