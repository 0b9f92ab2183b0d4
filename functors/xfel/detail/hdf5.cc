#include "functors/xfel/detail/hdf5.h"

#include <dlfcn.h>

#include <cstdlib>
#include <memory>
#include <mutex>

#include "functors/xfel/format_error.h"
#include "pasha/core/fork_handlers.h"
#include "pasha/core/fork_safe_mutex.h"

namespace pasha::xfel::detail {
namespace {

// HDF5's own lock, the one a thread-safe build takes around every call of its API, reached by name at
// run time: HDF5 1.10 and 1.12 do not publish it, but keep it first in H5_g, their library-wide state,
// as the H5TS_mutex_t that H5TS_mutex_lock and H5TS_mutex_unlock (exported) take. With another HDF5
// (not thread-safe, or 1.14, which publishes it differently) lock and unlock do nothing.
class Hdf5ApiLock {
 public:
  static Hdf5ApiLock& instance() {
    static Hdf5ApiLock lock;
    return lock;
  }
  void lock() noexcept {
    if (api_mutex_ != nullptr) mutex_lock_(api_mutex_);
  }
  void unlock() noexcept {
    if (api_mutex_ != nullptr) mutex_unlock_(api_mutex_);
  }

 private:
  Hdf5ApiLock() {
    // Initialises the library, its lock included, before anyone takes the lock from outside.
    if (H5open() < 0) return;
    unsigned major = 0, minor = 0, release = 0;
    hbool_t threadsafe = false;
    if (H5get_libversion(&major, &minor, &release) < 0 || H5is_library_threadsafe(&threadsafe) < 0) return;
    if (major != 1 || (minor != 10 && minor != 12) || !threadsafe) return;
    // Looked up in the HDF5 library that pasha calls (loaded locally, as by Python, it is not in the
    // global scope).
    Dl_info library{};
    if (dladdr(reinterpret_cast<void*>(&H5open), &library) == 0 || library.dli_fname == nullptr) return;
    void* handle = dlopen(library.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (handle == nullptr) return;
    mutex_lock_ = reinterpret_cast<herr_t (*)(void*)>(dlsym(handle, "H5TS_mutex_lock"));
    mutex_unlock_ = reinterpret_cast<herr_t (*)(void*)>(dlsym(handle, "H5TS_mutex_unlock"));
    if (mutex_lock_ != nullptr && mutex_unlock_ != nullptr) api_mutex_ = dlsym(handle, "H5_g");
    // (The handle stays open: the library is pasha's own dependency, loaded as long as pasha is.)
  }
  void* api_mutex_ = nullptr;  // null: no lock to take
  herr_t (*mutex_lock_)(void*) = nullptr;
  herr_t (*mutex_unlock_)(void*) = nullptr;
};

// pasha's lock around its groups of HDF5 calls. ForkSafe: a program's own fork() waits for the group
// in progress, as before any fork.
ForkSafe<std::recursive_mutex>& hdf5_mutex() {
  static ForkSafe<std::recursive_mutex> mutex;
  return mutex;
}

// Around the forks of pasha's contexts (not a program's own forks, which may hold the GIL while an
// h5py callback holding HDF5's lock waits for it): pasha's lock, then HDF5's own, so that no thread
// of the process, pasha's or another library's (h5py's, a user's), is inside HDF5 when a worker is
// forked, and the worker finds HDF5 whole and unlocked. HDF5's lock remembers its owner by pthread_t,
// which the forking thread keeps in the child: the child lets go of it. (The `pasha` Python package
// takes the GIL and h5py's lock before these, in the order h5py takes them.)
void lock_hdf5_before_fork() {
  hdf5_mutex().lock();
  Hdf5ApiLock::instance().lock();
}
void unlock_hdf5_in_parent() {
  Hdf5ApiLock::instance().unlock();
  hdf5_mutex().unlock();
}
void unlock_hdf5_in_child() {
  Hdf5ApiLock::instance().unlock();
  hdf5_mutex().renew_held_in_child();
}
// Registered when pasha is loaded (before the Python package's handlers, which so run first), with
// both locks made then.
[[maybe_unused]] const bool kForkHandlersRegistered = [] {
  hdf5_mutex();
  Hdf5ApiLock::instance();
  add_fork_handlers({.before = lock_hdf5_before_fork,
                     .after_in_parent = unlock_hdf5_in_parent,
                     .after_in_child = unlock_hdf5_in_child});
  return true;
}();

}  // namespace

void fail(const std::string& file_name, const std::string& hdf5_path, const std::string& what) {
  throw FormatError(file_name + (hdf5_path.empty() ? "" : ": " + hdf5_path) + ": " + what);
}

Hdf5Guard::Hdf5Guard() {
  hdf5_mutex().lock();
  thread_local bool silenced = false;
  if (!silenced) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    silenced = true;
  }
}

Hdf5Guard::~Hdf5Guard() { hdf5_mutex().unlock(); }

void Handle::reset() noexcept {
  if (id_ >= 0 && closer_ != nullptr) closer_(id_);
  id_ = H5I_INVALID_HID;
}

Handle open_file_readonly(const std::string& path) {
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  if (!fapl.valid()) fail(path, "", "cannot create a file access property list");
  // File locking as HDF5's default (HDF5_USE_FILE_LOCKING decides), which is h5py's: a process that
  // also reads the files with h5py (or EXtra-data) opens them with the same flags, as HDF5 requires of
  // a file opened twice.
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  if (is_hdf5 <= 0) fail(path, "", "not an HDF5 file, or it cannot be read");
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose);
  if (!file.valid()) fail(path, "", "cannot open as an HDF5 file");
  return file;
}

bool path_exists(hid_t file, const std::string& hdf5_path) {
  // Check each component, as H5Lexists requires.
  std::size_t pos = 0;
  while (pos <= hdf5_path.size()) {
    std::size_t next = hdf5_path.find('/', pos);
    if (next == std::string::npos) next = hdf5_path.size();
    const std::string prefix = hdf5_path.substr(0, next);
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    pos = next + 1;
  }
  return H5Oexists_by_name(file, hdf5_path.c_str(), H5P_DEFAULT) > 0;
}

Handle open_group(hid_t file, const std::string& file_name, const std::string& hdf5_path) {
  if (!path_exists(file, hdf5_path)) fail(file_name, hdf5_path, "no such group");
  Handle group(H5Gopen2(file, hdf5_path.c_str(), H5P_DEFAULT), H5Gclose);
  if (!group.valid()) fail(file_name, hdf5_path, "cannot open as a group");
  return group;
}

Handle open_dataset(hid_t file, const std::string& file_name, const std::string& hdf5_path) {
  if (!path_exists(file, hdf5_path)) fail(file_name, hdf5_path, "no such dataset");
  Handle dataset(H5Dopen2(file, hdf5_path.c_str(), H5P_DEFAULT), H5Dclose);
  if (!dataset.valid()) fail(file_name, hdf5_path, "cannot open as a dataset");
  return dataset;
}

std::vector<std::uint64_t> dataset_dims(hid_t dataset, const std::string& file_name, const std::string& hdf5_path) {
  Handle space(H5Dget_space(dataset), H5Sclose);
  if (!space.valid()) fail(file_name, hdf5_path, "cannot read the dataspace");
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0 || rank > 32) fail(file_name, hdf5_path, "bad dataspace rank");
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  if (rank > 0 && H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0) {
    fail(file_name, hdf5_path, "cannot read the dataspace extents");
  }
  return {dims.begin(), dims.end()};
}

namespace {

template <class T>
std::vector<T> read_integers(hid_t file, const std::string& file_name, const std::string& hdf5_path, hid_t mem_type) {
  Handle dataset = open_dataset(file, file_name, hdf5_path);
  const auto dims = dataset_dims(dataset.get(), file_name, hdf5_path);
  if (dims.size() > 1) fail(file_name, hdf5_path, "expected a 1-d dataset, found " + std::to_string(dims.size()) + "-d");
  Handle type(H5Dget_type(dataset.get()), H5Tclose);
  if (!type.valid() || H5Tget_class(type.get()) != H5T_INTEGER) {
    fail(file_name, hdf5_path, "expected integers, found " + describe_type(type.get()));
  }
  const std::size_t n = dims.empty() ? 1 : dims[0];
  std::vector<T> values(n);
  if (n > 0 && H5Dread(dataset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0) {
    fail(file_name, hdf5_path, "cannot read the dataset");
  }
  return values;
}

}  // namespace

std::vector<std::uint64_t> read_u64(hid_t file, const std::string& file_name, const std::string& hdf5_path) {
  return read_integers<std::uint64_t>(file, file_name, hdf5_path, H5T_NATIVE_UINT64);
}

std::vector<std::int64_t> read_i64(hid_t file, const std::string& file_name, const std::string& hdf5_path) {
  return read_integers<std::int64_t>(file, file_name, hdf5_path, H5T_NATIVE_INT64);
}

std::vector<std::string> read_strings(hid_t file, const std::string& file_name, const std::string& hdf5_path) {
  Handle dataset = open_dataset(file, file_name, hdf5_path);
  const auto dims = dataset_dims(dataset.get(), file_name, hdf5_path);
  if (dims.size() > 1) fail(file_name, hdf5_path, "expected a 1-d dataset of strings");
  const std::size_t n = dims.empty() ? 1 : dims[0];
  Handle file_type(H5Dget_type(dataset.get()), H5Tclose);
  if (!file_type.valid() || H5Tget_class(file_type.get()) != H5T_STRING) {
    fail(file_name, hdf5_path, "expected strings, found " + describe_type(file_type.get()));
  }
  std::vector<std::string> strings(n);
  if (n == 0) return strings;
  const htri_t is_variable = H5Tis_variable_str(file_type.get());
  if (is_variable < 0) fail(file_name, hdf5_path, "cannot inspect the string type");
  if (is_variable > 0) {
    Handle mem_type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem_type.get(), H5T_VARIABLE);
    std::vector<char*> pointers(n, nullptr);
    if (H5Dread(dataset.get(), mem_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()) < 0) {
      fail(file_name, hdf5_path, "cannot read the strings");
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (pointers[i] != nullptr) strings[i] = pointers[i];
    }
    Handle space(H5Dget_space(dataset.get()), H5Sclose);
    H5Dvlen_reclaim(mem_type.get(), space.get(), H5P_DEFAULT, pointers.data());
  } else {
    const std::size_t size = H5Tget_size(file_type.get());
    if (size == 0 || size > (1u << 20)) fail(file_name, hdf5_path, "bad fixed string length");
    // One byte more than stored: a NULLPAD or SPACEPAD string may fill all `size` bytes, and the
    // null-terminated memory type needs room for the terminator.
    const std::size_t width = size + 1;
    Handle mem_type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem_type.get(), width);
    std::vector<char> buffer(n * width);
    if (H5Dread(dataset.get(), mem_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()) < 0) {
      fail(file_name, hdf5_path, "cannot read the strings");
    }
    for (std::size_t i = 0; i < n; ++i) {
      const char* s = buffer.data() + i * width;
      std::size_t len = 0;
      while (len < width && s[len] != '\0') ++len;
      strings[i].assign(s, len);
    }
  }
  return strings;
}

hid_t native_type(ElementType type) {
  switch (type) {
    case ElementType::i8: return H5T_NATIVE_INT8;
    case ElementType::u8: return H5T_NATIVE_UINT8;
    case ElementType::i16: return H5T_NATIVE_INT16;
    case ElementType::u16: return H5T_NATIVE_UINT16;
    case ElementType::i32: return H5T_NATIVE_INT32;
    case ElementType::u32: return H5T_NATIVE_UINT32;
    case ElementType::i64: return H5T_NATIVE_INT64;
    case ElementType::u64: return H5T_NATIVE_UINT64;
    case ElementType::f32: return H5T_NATIVE_FLOAT;
    case ElementType::f64: return H5T_NATIVE_DOUBLE;
  }
  return H5I_INVALID_HID;
}

std::optional<ElementType> stored_element_type(hid_t dataset) {
  Handle type(H5Dget_type(dataset), H5Tclose);
  if (!type.valid()) return std::nullopt;
  const std::size_t size = H5Tget_size(type.get());
  switch (H5Tget_class(type.get())) {
    case H5T_INTEGER: {
      const bool is_signed = H5Tget_sign(type.get()) != H5T_SGN_NONE;
      switch (size) {
        case 1: return is_signed ? ElementType::i8 : ElementType::u8;
        case 2: return is_signed ? ElementType::i16 : ElementType::u16;
        case 4: return is_signed ? ElementType::i32 : ElementType::u32;
        case 8: return is_signed ? ElementType::i64 : ElementType::u64;
        default: return std::nullopt;
      }
    }
    case H5T_FLOAT:
      if (size == 4) return ElementType::f32;
      if (size == 8) return ElementType::f64;
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

std::string describe_type(hid_t type) {
  if (type < 0) return "an unreadable type";
  const std::string bits = std::to_string(8 * H5Tget_size(type)) + "-bit ";
  switch (H5Tget_class(type)) {
    case H5T_INTEGER: return bits + (H5Tget_sign(type) == H5T_SGN_NONE ? "unsigned integer" : "signed integer");
    case H5T_FLOAT: return bits + "float";
    case H5T_STRING: return H5Tis_variable_str(type) > 0 ? "variable-length string" : "fixed-length string";
    case H5T_COMPOUND: return "compound";
    case H5T_ENUM: return "enum";
    case H5T_ARRAY: return "array";
    case H5T_VLEN: return "variable-length sequence";
    case H5T_OPAQUE: return "opaque";
    case H5T_BITFIELD: return "bitfield";
    case H5T_REFERENCE: return "reference";
    default: return "an unknown type";
  }
}

void check_convertible(hid_t dataset, ElementType type, const std::string& file_name, const std::string& hdf5_path) {
  Handle file_type(H5Dget_type(dataset), H5Tclose);
  if (!file_type.valid()) fail(file_name, hdf5_path, "cannot read the stored type");
  const H5T_class_t cls = H5Tget_class(file_type.get());
  H5T_cdata_t* cdata = nullptr;
  const bool numeric = cls == H5T_INTEGER || cls == H5T_FLOAT;
  if (!numeric || H5Tfind(file_type.get(), native_type(type), &cdata) == nullptr) {
    fail(file_name, hdf5_path,
         "the stored type (" + describe_type(file_type.get()) + ") cannot be read as " + element_type_name(type));
  }
}

void read_rows(hid_t dataset, const std::vector<std::uint64_t>& dims, const std::string& file_name,
               const std::string& hdf5_path, std::uint64_t first, std::uint64_t count, ElementType type, void* out) {
  if (count == 0) return;
  std::vector<hsize_t> start(dims.size(), 0), extent(dims.begin(), dims.end());
  start[0] = first;
  extent[0] = count;
  Handle file_space(H5Dget_space(dataset), H5Sclose);
  Handle mem_space(H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr), H5Sclose);
  if (!file_space.valid() || !mem_space.valid() ||
      H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, extent.data(), nullptr) < 0) {
    fail(file_name, hdf5_path, "cannot select rows");
  }
  if (H5Dread(dataset, native_type(type), mem_space.get(), file_space.get(), H5P_DEFAULT, out) < 0) {
    fail(file_name, hdf5_path,
         "cannot read rows [" + std::to_string(first) + ", " + std::to_string(first + count) + ") as " +
             element_type_name(type) + " (the file may be damaged)");
  }
}

std::optional<RawStorage> raw_storage(hid_t dataset, const std::string& file_name, const std::string& hdf5_path,
                                      ElementType type) {
  Handle plist(H5Dget_create_plist(dataset), H5Pclose);
  if (!plist.valid()) fail(file_name, hdf5_path, "cannot read the dataset's creation properties");
  if (H5Pget_layout(plist.get()) != H5D_CONTIGUOUS || H5Pget_nfilters(plist.get()) != 0) return std::nullopt;
  Handle stored(H5Dget_type(dataset), H5Tclose);
  if (!stored.valid() || H5Tequal(stored.get(), native_type(type)) <= 0) return std::nullopt;
  const haddr_t offset = H5Dget_offset(dataset);
  if (offset == HADDR_UNDEF) return std::nullopt;  // not allocated (never written): HDF5 gives fill values
  return RawStorage{static_cast<std::uint64_t>(offset), static_cast<std::uint64_t>(H5Dget_storage_size(dataset))};
}

}  // namespace pasha::xfel::detail
