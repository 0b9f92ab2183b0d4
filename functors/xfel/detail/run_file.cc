#include "functors/xfel/detail/run_file.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/stat.h>

#include "functors/xfel/detail/hdf5.h"
#include "functors/xfel/format_error.h"

namespace pasha::xfel::detail {
namespace {

[[noreturn]] void fail(const std::string& file_name, const std::string& hdf5_path, const std::string& what) {
  throw FormatError(file_name + (hdf5_path.empty() ? "" : ": " + hdf5_path) + ": " + what);
}

// (major, minor) of "1.2"; "0.5" for anything unparsable is not assumed: unparsable is an error.
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
  file->load();
  return file;
}

void RunFile::load() {
  const Hdf5Guard guard;
  Handle handle = open_file_readonly(path_);
  const hid_t f = handle.get();
  const std::string& name = path_;
  if (!path_exists(f, "METADATA")) fail(name, "METADATA", "missing: not a European XFEL run file");
  if (!path_exists(f, "INDEX")) fail(name, "INDEX", "missing: not a European XFEL run file");

  version_ = "0.5";
  if (path_exists(f, "METADATA/dataFormatVersion")) {
    const auto versions = read_strings(f, name, "METADATA/dataFormatVersion");
    if (versions.size() != 1) fail(name, "METADATA/dataFormatVersion", "expected one string");
    version_ = versions[0];
  }
  const auto [major, minor] = parse_version(name, version_);
  const bool v1 = major >= 1;

  const std::string lists = path_exists(f, "METADATA/dataSources/dataSourceId") ? "METADATA/dataSources/" : "METADATA/";
  const auto source_ids = read_strings(f, name, lists + "dataSourceId");

  // Train ids: non-zero ones, which must all come before the padding.
  const auto raw_ids = read_u64(f, name, "INDEX/trainId");
  std::size_t n = 0;
  while (n < raw_ids.size() && raw_ids[n] != 0) ++n;
  for (std::size_t i = n; i < raw_ids.size(); ++i) {
    if (raw_ids[i] != 0) {
      fail(name, "INDEX/trainId", "train id 0 at position " + std::to_string(n) + " before non-zero id " +
                                      std::to_string(raw_ids[i]) + " (zeros may only pad the end)");
    }
  }
  train_ids_.assign(raw_ids.begin(), raw_ids.begin() + static_cast<std::ptrdiff_t>(n));

  if (v1 && path_exists(f, "INDEX/flag")) {
    const auto flags = read_i64(f, name, "INDEX/flag");
    if (flags.size() < n) fail(name, "INDEX/flag", "shorter than INDEX/trainId");
    const bool inverted = major == 1 && minor == 1;
    valid_.resize(n);
    for (std::size_t i = 0; i < n; ++i) valid_[i] = inverted ? flags[i] == 0 : flags[i] != 0;
  } else if (v1) {
    valid_.assign(n, true);
  } else {
    valid_ = guess_valid_train_ids(train_ids_);
  }

  auto read_index = [&](const std::string& index_path) {
    IndexGroup group;
    if (path_exists(f, index_path + "/count")) {
      group.first = read_u64(f, name, index_path + "/first");
      group.count = read_u64(f, name, index_path + "/count");
    } else if (path_exists(f, index_path + "/last") && path_exists(f, index_path + "/status")) {
      group.first = read_u64(f, name, index_path + "/first");
      const auto last = read_u64(f, name, index_path + "/last");
      const auto status = read_u64(f, name, index_path + "/status");
      if (last.size() < n || status.size() < n) fail(name, index_path, "last/status shorter than INDEX/trainId");
      group.count.resize(n);
      for (std::size_t i = 0; i < n && i < group.first.size(); ++i) {
        if (status[i] == 0) continue;
        if (last[i] < group.first[i]) fail(name, index_path + "/last", "last < first at position " + std::to_string(i));
        group.count[i] = last[i] - group.first[i] + 1;
      }
    } else {
      fail(name, index_path, "no index (first/count or first/last/status)");
    }
    if (group.first.size() < n || group.count.size() < n) {
      fail(name, index_path, "index shorter than INDEX/trainId (" + std::to_string(n) + " trains)");
    }
    group.first.resize(n);
    group.count.resize(n);
    return group;
  };

  auto collect_keys = [&](const std::string& base, const std::string& key_prefix, const std::string& group,
                          Source& source) {
    Handle g = open_group(f, name, base);
    std::vector<std::string> datasets;
    if (H5Ovisit2(g.get(), H5_INDEX_NAME, H5_ITER_INC, collect_datasets, &datasets, H5O_INFO_BASIC) < 0) {
      fail(name, base, "cannot list the datasets");
    }
    for (const std::string& object : datasets) {
      Key key;
      key.dataset = base + "/" + object;
      key.group = group;
      Handle dataset = open_dataset(f, name, key.dataset);
      key.dims = dataset_dims(dataset.get(), name, key.dataset);
      if (key.dims.empty()) fail(name, key.dataset, "a scalar dataset where rows were expected");
      source.keys.emplace(key_prefix + dots(object), std::move(key));
    }
  };

  for (const std::string& id : source_ids) {
    if (id.empty()) continue;
    const std::size_t slash = id.find('/');
    const std::string category = id.substr(0, slash);
    if (slash == std::string::npos || slash + 1 == id.size()) {
      if (category == "Karabo_TimerServer") continue;
      fail(name, lists + "dataSourceId", "malformed data source '" + id + "'");
    }
    const std::string rest = id.substr(slash + 1);
    if (category == "CONTROL") {
      Source& source = sources_[rest];
      source.control = true;
      source.groups.emplace("", read_index("INDEX/" + rest));
      collect_keys("CONTROL/" + rest, "", "", source);
    } else if (category == "INSTRUMENT") {
      const std::size_t colon = rest.find(':');
      const std::size_t group_slash = colon == std::string::npos ? std::string::npos : rest.find('/', colon);
      if (group_slash == std::string::npos || group_slash + 1 == rest.size()) {
        fail(name, lists + "dataSourceId", "INSTRUMENT source without <device>:<channel>/<group>: '" + id + "'");
      }
      const std::string source_name = rest.substr(0, group_slash);
      const std::string group = rest.substr(group_slash + 1);
      Source& source = sources_[source_name];
      source.control = false;
      source.groups.emplace(group, read_index("INDEX/" + source_name + "/" + group));
      collect_keys("INSTRUMENT/" + rest, group + ".", group, source);
    } else if (category == "Karabo_TimerServer") {
      continue;
    } else {
      fail(name, lists + "dataSourceId", "unknown data category in '" + id + "'");
    }
  }
}

RunFile::~RunFile() {
  std::lock_guard lock(mutex_);
  drop_handles_locked(owner_pid_ == ::getpid());
}

void RunFile::drop_handles_locked(bool close) const {
  if (close && (file_ >= 0 || !datasets_.empty())) {
    const Hdf5Guard guard;
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
    // only and without file locks, so the parent is unaffected) and opens the file afresh.
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

void RunFile::read(const Key& key, std::uint64_t first, std::uint64_t count, const std::vector<std::size_t>& entry_shape,
                   ElementType type, void* out) const {
  std::lock_guard lock(mutex_);
  const Hdf5Guard guard;
  read_rows(dataset_handle_locked(key.dataset), path_, key.dataset, first, count, entry_shape, type, out);
}

void RunFile::check_readable(const Key& key, ElementType type) const {
  std::lock_guard lock(mutex_);
  const Hdf5Guard guard;
  check_convertible(dataset_handle_locked(key.dataset), type, path_, key.dataset);
}

void RunFile::close() const {
  std::lock_guard lock(mutex_);
  drop_handles_locked(owner_pid_ == ::getpid());
}

}  // namespace pasha::xfel::detail
