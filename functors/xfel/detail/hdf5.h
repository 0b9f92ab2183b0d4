// Thin RAII and error handling around the HDF5 C library, for the XFEL reader and its tools.
// Internal to pasha: include only from functors/xfel and tools/xfel.
//
// Every function here turns HDF5 failures into pasha::xfel::FormatError naming the file and HDF5
// path; HDF5's own error printing is silenced on every thread that goes through Hdf5Guard.
//
// Locking: every HDF5 call of pasha's is made under Hdf5Guard, one process-wide lock (a thread-safe
// HDF5, as Debian's, takes its own global lock inside each call too). The lock is fork-safe
// (pasha/core/fork_safe_mutex.h): a fork waits for pasha's HDF5 calls in progress. The forks of
// pasha's contexts also wait until no other thread is inside HDF5 (h5py's, a user's: HDF5 1.10 and
// 1.12's own lock is taken around them), so that a forked worker never inherits HDF5 mid-call. Never
// wait for Hdf5Guard holding a lock that a thread inside HDF5 may wait for (Python's GIL: h5py's
// callbacks). Data of contiguous, unfiltered datasets is read without HDF5 (RunFile::pread_rows), so
// reads on the hot path take no lock at all.
#ifndef PASHA_FUNCTORS_XFEL_DETAIL_HDF5_H_
#define PASHA_FUNCTORS_XFEL_DETAIL_HDF5_H_

#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "functors/xfel/element_type.h"

namespace pasha::xfel::detail {

// Throws FormatError "<file>: <hdf5 path>: <what>" (the path left out when empty).
[[noreturn]] void fail(const std::string& file_name, const std::string& hdf5_path, const std::string& what);

// Held around every group of HDF5 calls (and the state pasha keeps of open HDF5 handles): one
// process-wide, recursive, fork-safe lock. Also silences HDF5's automatic error printing for this
// thread (error stacks are per thread in thread-safe builds).
class Hdf5Guard {
 public:
  Hdf5Guard();
  ~Hdf5Guard();
  Hdf5Guard(const Hdf5Guard&) = delete;
  Hdf5Guard& operator=(const Hdf5Guard&) = delete;
};

// An owned hid_t, closed with the matching H5*close when it goes. Movable, not copyable.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)), closer_(other.closer_) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
      closer_ = other.closer_;
    }
    return *this;
  }
  ~Handle() { reset(); }
  hid_t get() const noexcept { return id_; }
  bool valid() const noexcept { return id_ >= 0; }
  void reset() noexcept;
  // Gives up the id without closing it (for handles inherited across a fork).
  void abandon() noexcept { id_ = H5I_INVALID_HID; }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// Opens `path` read-only (file locking off, so that handles behave across fork). Throws FormatError
// when the file is missing or not HDF5.
Handle open_file_readonly(const std::string& path);

bool path_exists(hid_t file, const std::string& hdf5_path);
// Opens a group or dataset; throws FormatError naming `file_name` and the path.
Handle open_group(hid_t file, const std::string& file_name, const std::string& hdf5_path);
Handle open_dataset(hid_t file, const std::string& file_name, const std::string& hdf5_path);

// The extents of a dataset's dataspace (empty for a scalar).
std::vector<std::uint64_t> dataset_dims(hid_t dataset, const std::string& file_name, const std::string& hdf5_path);

// A whole 1-d (or scalar) dataset of integers, converted by HDF5 to u64 / i64.
std::vector<std::uint64_t> read_u64(hid_t file, const std::string& file_name, const std::string& hdf5_path);
std::vector<std::int64_t> read_i64(hid_t file, const std::string& file_name, const std::string& hdf5_path);
// A whole 1-d (or scalar) dataset of strings, variable- or fixed-length.
std::vector<std::string> read_strings(hid_t file, const std::string& file_name, const std::string& hdf5_path);

// The native HDF5 memory type of an element type.
hid_t native_type(ElementType type);

// The element type a dataset stores, when it is an integer or floating-point type of one of the
// sizes the reader reads into; nullopt otherwise (strings, compounds, ...).
std::optional<ElementType> stored_element_type(hid_t dataset);

// A short description of an HDF5 datatype ("16-bit unsigned integer", "variable-length string").
std::string describe_type(hid_t type);

// Throws FormatError unless HDF5 can convert the dataset's stored type to `type`.
void check_convertible(hid_t dataset, ElementType type, const std::string& file_name, const std::string& hdf5_path);

// Reads rows [first, first + count) of `dataset`, whose dimensions are `dims` (rows first), as `type`
// into `out`, which holds count * prod(dims[1:]) elements. The caller has checked that the rows exist
// and that the type converts; throws FormatError naming the file and path when HDF5 cannot read them.
void read_rows(hid_t dataset, const std::vector<std::uint64_t>& dims, const std::string& file_name,
               const std::string& hdf5_path, std::uint64_t first, std::uint64_t count, ElementType type, void* out);

// Where a dataset's data lies in its file, when it can be read without HDF5: stored contiguously, not
// filtered (compressed), allocated, and of a type that is `type` in memory byte for byte.
struct RawStorage {
  std::uint64_t offset = 0;  // of the first byte in the file
  std::uint64_t bytes = 0;
};
std::optional<RawStorage> raw_storage(hid_t dataset, const std::string& file_name, const std::string& hdf5_path,
                                      ElementType type);

}  // namespace pasha::xfel::detail

#endif  // PASHA_FUNCTORS_XFEL_DETAIL_HDF5_H_
