#include "functors/xfel/detail/run_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "functors/xfel/format_error.h"

namespace pasha::xfel::detail {
namespace {

// (major, minor) of "1.2"; anything unparsable is an error.
std::pair<int, int> parse_version(const std::string& file_name, const std::string& version) {
  int major = 0, minor = 0;
  char dot = 0;
  if (std::sscanf(version.c_str(), "%d%c%d", &major, &dot, &minor) != 3 || dot != '.') {
    fail(file_name, "METADATA/dataFormatVersion", "unrecognised format version '" + version + "'");
  }
  return {major, minor};
}

// H5Ovisit callback: collects the names of the datasets below a group.
herr_t collect_datasets(hid_t, const char* name, const H5O_info_t* info, void* datasets) {
  if (info->type == H5O_TYPE_DATASET) static_cast<std::vector<std::string>*>(datasets)->emplace_back(name);
  return 0;
}

std::string dots(std::string path) {
  std::replace(path.begin(), path.end(), '/', '.');
  return path;
}

}  // namespace

// Reads one file's metadata into a RunFile, step by step, with the file open (under Hdf5Guard).
class RunFileLoader {
 public:
  RunFileLoader(RunFile& file, hid_t handle) : file_(file), f_(handle), name_(file.path_) {}

  void load() {
    if (!path_exists(f_, "METADATA")) fail(name_, "METADATA", "missing: not a European XFEL run file");
    if (!path_exists(f_, "INDEX")) fail(name_, "INDEX", "missing: not a European XFEL run file");
    const auto [major, minor] = read_version();
    read_train_ids();
    read_valid_flags(major, minor);
    read_sources();
  }

 private:
  std::pair<int, int> read_version() {
    file_.version_ = "0.5";
    if (path_exists(f_, "METADATA/dataFormatVersion")) {
      const auto versions = read_strings(f_, name_, "METADATA/dataFormatVersion");
      if (versions.size() != 1) fail(name_, "METADATA/dataFormatVersion", "expected one string");
      file_.version_ = versions[0];
    }
    return parse_version(name_, file_.version_);
  }

  // The non-zero train ids, which must all come before the padding.
  void read_train_ids() {
    const auto raw_ids = read_u64(f_, name_, "INDEX/trainId");
    std::size_t n = 0;
    while (n < raw_ids.size() && raw_ids[n] != 0) ++n;
    for (std::size_t i = n; i < raw_ids.size(); ++i) {
      if (raw_ids[i] != 0) {
        fail(name_, "INDEX/trainId", "train id 0 at position " + std::to_string(n) + " before non-zero id " +
                                         std::to_string(raw_ids[i]) + " (zeros may only pad the end)");
      }
    }
    file_.train_ids_.assign(raw_ids.begin(), raw_ids.begin() + static_cast<std::ptrdiff_t>(n));
  }

  // INDEX/flag (format 1.1 inverted it), all valid for 1.x without it, guessed for 0.5.
  void read_valid_flags(int major, int minor) {
    const std::size_t n = file_.train_ids_.size();
    if (major >= 1 && path_exists(f_, "INDEX/flag")) {
      const auto flags = read_i64(f_, name_, "INDEX/flag");
      if (flags.size() < n) fail(name_, "INDEX/flag", "shorter than INDEX/trainId");
      const bool inverted = major == 1 && minor == 1;
      file_.valid_.resize(n);
      for (std::size_t i = 0; i < n; ++i) file_.valid_[i] = inverted ? flags[i] == 0 : flags[i] != 0;
    } else if (major >= 1) {
      file_.valid_.assign(n, true);
    } else {
      file_.valid_ = guess_valid_train_ids(file_.train_ids_);
    }
  }

  // first/count, or the old first/last/status, cut to the file's trains.
  RunFile::IndexGroup read_index(const std::string& index_path) {
    const std::size_t n = file_.train_ids_.size();
    RunFile::IndexGroup group;
    if (path_exists(f_, index_path + "/count")) {
      group.first = read_u64(f_, name_, index_path + "/first");
      group.count = read_u64(f_, name_, index_path + "/count");
    } else if (path_exists(f_, index_path + "/last") && path_exists(f_, index_path + "/status")) {
      group.first = read_u64(f_, name_, index_path + "/first");
      const auto last = read_u64(f_, name_, index_path + "/last");
      const auto status = read_u64(f_, name_, index_path + "/status");
      if (last.size() < n || status.size() < n) fail(name_, index_path, "last/status shorter than INDEX/trainId");
      group.count.resize(n);
      for (std::size_t i = 0; i < n && i < group.first.size(); ++i) {
        if (status[i] == 0) continue;
        if (last[i] < group.first[i]) fail(name_, index_path + "/last", "last < first at position " + std::to_string(i));
        group.count[i] = last[i] - group.first[i] + 1;
      }
    } else {
      fail(name_, index_path, "no index (first/count or first/last/status)");
    }
    if (group.first.size() < n || group.count.size() < n) {
      fail(name_, index_path, "index shorter than INDEX/trainId (" + std::to_string(n) + " trains)");
    }
    group.first.resize(n);
    group.count.resize(n);
    return group;
  }

  // Every dataset below `base`, as keys named `key_prefix` + its path with dots.
  void collect_keys(const std::string& base, const std::string& key_prefix, const std::string& group,
                    RunFile::Source& source) {
    Handle g = open_group(f_, name_, base);
    std::vector<std::string> datasets;
    if (H5Ovisit2(g.get(), H5_INDEX_NAME, H5_ITER_INC, collect_datasets, &datasets, H5O_INFO_BASIC) < 0) {
      fail(name_, base, "cannot list the datasets");
    }
    for (const std::string& object : datasets) {
      RunFile::Key key;
      key.dataset = base + "/" + object;
      key.group = group;
      Handle dataset = open_dataset(f_, name_, key.dataset);
      key.dims = dataset_dims(dataset.get(), name_, key.dataset);
      key.stored = stored_element_type(dataset.get());
      if (key.dims.empty()) fail(name_, key.dataset, "a scalar dataset where rows were expected");
      source.keys.emplace(key_prefix + dots(object), std::move(key));
    }
  }

  // The sources listed in METADATA: CONTROL/<device>, INSTRUMENT/<device>:<channel>/<group>.
  void read_sources() {
    const std::string lists =
        path_exists(f_, "METADATA/dataSources/dataSourceId") ? "METADATA/dataSources/" : "METADATA/";
    for (const std::string& id : read_strings(f_, name_, lists + "dataSourceId")) {
      if (id.empty()) continue;
      const std::size_t slash = id.find('/');
      const std::string category = id.substr(0, slash);
      if (category == "Karabo_TimerServer") continue;
      if (slash == std::string::npos || slash + 1 == id.size()) {
        fail(name_, lists + "dataSourceId", "malformed data source '" + id + "'");
      }
      const std::string rest = id.substr(slash + 1);
      if (category == "CONTROL") {
        RunFile::Source& source = file_.sources_[rest];
        source.control = true;
        source.groups.emplace("", read_index("INDEX/" + rest));
        collect_keys("CONTROL/" + rest, "", "", source);
      } else if (category == "INSTRUMENT") {
        const std::size_t colon = rest.find(':');
        const std::size_t group_slash = colon == std::string::npos ? std::string::npos : rest.find('/', colon);
        if (group_slash == std::string::npos || group_slash + 1 == rest.size()) {
          fail(name_, lists + "dataSourceId", "INSTRUMENT source without <device>:<channel>/<group>: '" + id + "'");
        }
        const std::string source_name = rest.substr(0, group_slash);
        const std::string group = rest.substr(group_slash + 1);
        RunFile::Source& source = file_.sources_[source_name];
        source.control = false;
        source.groups.emplace(group, read_index("INDEX/" + source_name + "/" + group));
        collect_keys("INSTRUMENT/" + rest, group + ".", group, source);
      } else {
        fail(name_, lists + "dataSourceId", "unknown data category in '" + id + "'");
      }
    }
  }

  RunFile& file_;
  hid_t f_;
  const std::string& name_;
};

std::vector<bool> guess_valid_train_ids(const std::vector<std::uint64_t>& ids) {
  std::vector<bool> valid(ids.size(), true);
  for (std::size_t ix = 0; ix + 1 < ids.size(); ++ix) {
    if (ids[ix + 1] > ids[ix]) continue;
    std::size_t before = 0, after = 0;
    for (std::size_t j = 0; j <= ix; ++j) before += ids[j] >= ids[ix + 1];
    for (std::size_t j = ix + 1; j < ids.size(); ++j) after += ids[j] <= ids[ix];
    if (before < after) {
      for (std::size_t j = 0; j <= ix; ++j) {
        if (ids[j] >= ids[ix + 1]) valid[j] = false;
      }
    } else {
      for (std::size_t j = ix + 1; j < ids.size(); ++j) {
        if (ids[j] <= ids[ix]) valid[j] = false;
      }
    }
  }
  return valid;
}

std::shared_ptr<RunFile> RunFile::open(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) fail(path, "", std::string("cannot open: ") + std::strerror(errno));
  if (!S_ISREG(info.st_mode)) fail(path, "", "not a regular file");
  std::shared_ptr<RunFile> file(new RunFile(path));
  const Hdf5Guard guard;
  Handle handle = open_file_readonly(path);
  RunFileLoader(*file, handle.get()).load();
  return file;
}

RunFile::~RunFile() {
  const Hdf5Guard guard;
  drop_handles_locked(owner_pid_ == ::getpid());
  if (const int fd = fd_.load(std::memory_order_acquire); fd >= 0) ::close(fd);
}

void RunFile::drop_handles_locked(bool close) const {
  if (close) {
    for (auto& [path, id] : datasets_) H5Dclose(id);
    if (file_ >= 0) H5Fclose(file_);
  }
  datasets_.clear();
  file_ = H5I_INVALID_HID;
}

hid_t RunFile::file_handle_locked() const {
  const pid_t pid = ::getpid();
  if (owner_pid_ != pid) {
    // Handles inherited from the parent of a fork are never used: the child closes its copies (read
    // only, so the parent's reads are unaffected; at most a shared lock of the parent's goes, which
    // only a writer would notice) and opens the file afresh.
    drop_handles_locked(true);
    owner_pid_ = pid;
  }
  if (file_ < 0) {
    Handle handle = open_file_readonly(path_);
    file_ = handle.get();
    handle.abandon();
  }
  return file_;
}

hid_t RunFile::dataset_handle_locked(const std::string& dataset) const {
  const hid_t file = file_handle_locked();
  auto it = datasets_.find(dataset);
  if (it != datasets_.end()) return it->second;
  Handle handle = open_dataset(file, path_, dataset);
  const hid_t id = handle.get();
  datasets_.emplace(dataset, id);
  handle.abandon();
  return id;
}

int RunFile::descriptor() const {
  if (const int fd = fd_.load(std::memory_order_acquire); fd >= 0) return fd;
  const int opened = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (opened < 0) fail(path_, "", std::string("cannot open: ") + std::strerror(errno));
  int expected = -1;
  if (fd_.compare_exchange_strong(expected, opened, std::memory_order_acq_rel)) return opened;
  ::close(opened);  // another thread opened it first
  return expected;
}

std::optional<RawStorage> RunFile::prepare(const Key& key, ElementType type) const {
  std::optional<RawStorage> raw;
  {
    const Hdf5Guard guard;
    const hid_t dataset = dataset_handle_locked(key.dataset);
    check_convertible(dataset, type, path_, key.dataset);
    raw = raw_storage(dataset, path_, key.dataset, type);
  }
  if (!raw) return std::nullopt;
  std::uint64_t expected = element_size(type);
  for (std::uint64_t extent : key.dims) expected *= extent;
  struct stat info {};
  if (::fstat(descriptor(), &info) != 0) fail(path_, "", std::string("cannot stat: ") + std::strerror(errno));
  const auto file_bytes = static_cast<std::uint64_t>(info.st_size);
  if (raw->bytes != expected || raw->offset > file_bytes || raw->bytes > file_bytes - raw->offset) {
    fail(path_, key.dataset,
         "the dataset's data (" + std::to_string(raw->bytes) + " bytes at offset " + std::to_string(raw->offset) +
             ", " + std::to_string(expected) + " bytes expected) does not lie within the file (" +
             std::to_string(file_bytes) + " bytes): the file is damaged or truncated");
  }
  return raw;
}

void RunFile::read(const Key& key, std::uint64_t first, std::uint64_t count, ElementType type, void* out) const {
  const Hdf5Guard guard;
  read_rows(dataset_handle_locked(key.dataset), key.dims, path_, key.dataset, first, count, type, out);
}

void RunFile::pread_bytes(std::uint64_t offset, std::uint64_t bytes, void* out, const std::string& what) const {
  const int fd = descriptor();
  auto* destination = static_cast<char*>(out);
  while (bytes > 0) {
    const ssize_t got = ::pread(fd, destination, bytes, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail(path_, what, std::string("cannot read: ") + std::strerror(errno));
    if (got == 0) fail(path_, what, "the file ends before the dataset's data (it was truncated)");
    destination += got;
    offset += static_cast<std::uint64_t>(got);
    bytes -= static_cast<std::uint64_t>(got);
  }
}

void RunFile::close() const {
  {
    const Hdf5Guard guard;
    drop_handles_locked(owner_pid_ == ::getpid());
  }
  if (const int fd = fd_.exchange(-1, std::memory_order_acq_rel); fd >= 0) ::close(fd);
}

}  // namespace pasha::xfel::detail
