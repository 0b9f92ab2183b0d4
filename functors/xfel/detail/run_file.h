// RunFile: what the XFEL reader knows about one run file (metadata read once, when opened), and the
// ways its data is read: without HDF5 for contiguous, unfiltered datasets stored in the type asked
// for (pread at the offset HDF5 reports, or a private mapping of the file for large reads: see
// FileWindow), or through HDF5 (everything else). Internal to pasha.
//
// Handles and fork: the file is opened for the metadata and closed again; HDF5 reads open it lazily
// and keep the handles until close() or destruction. HDF5 handles remember the process that opened
// them: a forked child never reads through its parent's, it opens the file again. The descriptor for
// pread is shared by threads and inherited by forked children, which is safe: pread has no file
// position.
//
// Thread-safety: the metadata is immutable after open(). HDF5 reads and prepare() take the process's
// HDF5 lock (detail/hdf5.h); pread_rows takes none. close() must not run concurrently with reads.
#ifndef PASHA_FUNCTORS_XFEL_DETAIL_RUN_FILE_H_
#define PASHA_FUNCTORS_XFEL_DETAIL_RUN_FILE_H_

#include <hdf5.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "functors/xfel/element_type.h"
#include "functors/xfel/detail/file_window.h"
#include "functors/xfel/detail/hdf5.h"

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
    std::optional<ElementType> stored;  // the stored element type, when the reader has one for it
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

  // Checks that HDF5 can read `key` as `type` (FormatError naming the file and dataset otherwise), and
  // returns where its data lies when pread_rows can read it as `type`: contiguous, unfiltered, stored
  // as `type`, and within the file (a damaged offset, or a file shorter than the dataset, is a
  // FormatError). nullopt: read it through HDF5.
  std::optional<RawStorage> prepare(const Key& key, ElementType type) const;
  // Reads rows [first, first + count) of `key` as `type` into `out` through HDF5.
  void read(const Key& key, std::uint64_t first, std::uint64_t count, ElementType type, void* out) const;
  // Reads `bytes` bytes at `offset` into `out` with pread, without HDF5 and without a lock. Throws
  // FormatError naming `what` when the file ends before them (it was truncated since).
  void pread_bytes(std::uint64_t offset, std::uint64_t bytes, void* out, const std::string& what) const;
  // Closes the handles and the descriptor this process opened; the next read reopens them.
  void close() const;

  // Maps `bytes` bytes at `offset` into `window` (see FileWindow::map).
  void* map(FileWindow& window, std::uint64_t offset, std::uint64_t bytes, const std::string& what) const {
    return window.map(descriptor(), path_, offset, bytes, what);
  }

 private:
  friend class RunFileLoader;
  explicit RunFile(std::string path) : path_(std::move(path)) {}
  // The file's HDF5 id (and a dataset's) for this process, opened on first use. Under Hdf5Guard.
  hid_t file_handle_locked() const;
  hid_t dataset_handle_locked(const std::string& dataset) const;
  void drop_handles_locked(bool close) const;
  // The descriptor for pread, opened on first use.
  int descriptor() const;

  std::string path_;
  std::string version_;
  std::vector<std::uint64_t> train_ids_;
  std::vector<bool> valid_;
  std::map<std::string, Source> sources_;

  // HDF5 handles; under Hdf5Guard.
  mutable pid_t owner_pid_ = 0;
  mutable hid_t file_ = H5I_INVALID_HID;
  mutable std::map<std::string, hid_t> datasets_;
  mutable std::atomic<int> fd_{-1};
};

// Which valid flags a format-0.5 file's train ids get: EXtra-data's guess from where the ids
// descend. Exposed for tests.
std::vector<bool> guess_valid_train_ids(const std::vector<std::uint64_t>& train_ids);

}  // namespace pasha::xfel::detail

#endif  // PASHA_FUNCTORS_XFEL_DETAIL_RUN_FILE_H_
