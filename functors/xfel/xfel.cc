#include "functors/xfel/xfel.h"

#include <dirent.h>
#include <fnmatch.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "functors/xfel/detail/run_file.h"

namespace pasha::xfel {
namespace detail {
namespace {

const RunFile::Key& file_key(const Run& run, std::int32_t file, const std::string& source, const std::string& key) {
  const RunFile& f = *run.files[static_cast<std::size_t>(file)];
  const auto src = f.sources().find(source);
  if (src == f.sources().end()) throw FormatError(f.path() + ": source " + source + " is not in this file");
  const auto it = src->second.keys.find(key);
  if (it == src->second.keys.end()) {
    throw FormatError(f.path() + ": key " + key + " of source " + source +
                      " is not in this file, but the index gives it rows");
  }
  return it->second;
}

// Throws FormatError unless loc's rows exist in the file's dataset (as recorded when it was opened).
void validate_location(const Run& run, const std::string& source, const std::string& key, const Location& loc,
                       const std::vector<std::size_t>& entry_shape) {
  if (loc.count == 0) return;
  const RunFile::Key& k = file_key(run, loc.file, source, key);
  const std::string& path = run.files[static_cast<std::size_t>(loc.file)]->path();
  if (k.dims.size() != entry_shape.size() + 1 ||
      !std::equal(entry_shape.begin(), entry_shape.end(), k.dims.begin() + 1)) {
    throw FormatError(path + ": " + k.dataset + ": entry shape differs from the other files of " + source + " " + key);
  }
  if (loc.first > k.dims[0] || loc.count > k.dims[0] - loc.first) {
    throw FormatError(path + ": " + k.dataset + ": the index points at rows [" + std::to_string(loc.first) + ", " +
                      std::to_string(loc.first) + " + " + std::to_string(loc.count) + ") but the dataset has " +
                      std::to_string(k.dims[0]) + " rows");
  }
}

bool glob_match(const std::string& pattern, const std::string& text) {
  return ::fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

}  // namespace

void read_rows(const Run& run, const std::string& source, const std::string& key, const Location& loc,
               const std::vector<std::size_t>& entry_shape, ElementType type, void* out) {
  validate_location(run, source, key, loc, entry_shape);
  run.files[static_cast<std::size_t>(loc.file)]->read(file_key(run, loc.file, source, key), loc.first, loc.count,
                                                      entry_shape, type, out);
}

void check_key(const Run& run, const std::string& source, const std::string& key,
               const std::vector<std::size_t>& positions, ElementType type) {
  const SourceInfo& src = run.sources.at(source);
  const KeyInfo& info = src.keys.at(key);
  const std::vector<Location>& locations = src.groups.at(info.group);
  std::vector<bool> checked(run.files.size(), false);
  for (std::size_t p : positions) {
    const Location& loc = locations[p];
    validate_location(run, source, key, loc, info.entry_shape);
    if (loc.count > 0 && !checked[static_cast<std::size_t>(loc.file)]) {
      run.files[static_cast<std::size_t>(loc.file)]->check_readable(file_key(run, loc.file, source, key), type);
      checked[static_cast<std::size_t>(loc.file)] = true;
    }
  }
  // A key with no rows in the selection is still checked for its type, in the first file that has it.
  if (std::find(checked.begin(), checked.end(), true) == checked.end()) {
    for (std::int32_t f : src.files) {
      const auto& keys = run.files[static_cast<std::size_t>(f)]->sources().at(source).keys;
      if (keys.count(key) > 0) {
        run.files[static_cast<std::size_t>(f)]->check_readable(keys.at(key), type);
        break;
      }
    }
  }
}

}  // namespace detail

TrainSelection by_index(std::size_t begin, std::size_t end) {
  TrainSelection s;
  s.kind_ = TrainSelection::Kind::index_range;
  s.begin_ = begin;
  s.end_ = end;
  return s;
}

TrainSelection by_id(std::uint64_t begin, std::uint64_t end) {
  TrainSelection s;
  s.kind_ = TrainSelection::Kind::id_range;
  s.begin_ = begin;
  s.end_ = end;
  return s;
}

TrainSelection by_id(std::vector<std::uint64_t> ids) {
  TrainSelection s;
  s.kind_ = TrainSelection::Kind::id_list;
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  s.ids_ = std::move(ids);
  return s;
}

DataCollection H5File(const std::string& path, const OpenOptions& options) {
  return DataCollection::from_files({detail::RunFile::open(path)}, options, {});
}

DataCollection RunDirectory(const std::string& path, const OpenOptions& options) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    throw FormatError(path + ": cannot open run directory: " + std::strerror(errno));
  }
  if (!S_ISDIR(info.st_mode)) throw FormatError(path + ": not a directory");
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) throw FormatError(path + ": cannot list run directory: " + std::strerror(errno));
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name.size() > 3 && name.ends_with(".h5") && name != "overview.h5") names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  std::vector<std::shared_ptr<detail::RunFile>> files;
  std::vector<std::pair<std::string, std::string>> skipped;
  for (const std::string& name : names) {
    const std::string file_path = path + "/" + name;
    try {
      files.push_back(detail::RunFile::open(file_path));
    } catch (const FormatError& error) {
      if (!options.skip_unreadable_files) throw;
      skipped.emplace_back(file_path, error.what());
    }
  }
  if (files.empty()) {
    throw FormatError(path + ": no usable run files (*.h5)" +
                      (skipped.empty() ? std::string() : "; first problem: " + skipped.front().second));
  }
  return DataCollection::from_files(std::move(files), options, std::move(skipped));
}

DataCollection DataCollection::from_files(std::vector<std::shared_ptr<detail::RunFile>> files,
                                          const OpenOptions& options,
                                          std::vector<std::pair<std::string, std::string>> skipped) {
  auto run = std::make_shared<detail::Run>();
  run->files = std::move(files);
  auto included = [&](const detail::RunFile& f, std::size_t i) { return options.inc_suspect_trains || f.valid()[i]; };

  std::vector<std::uint64_t> all;
  for (const auto& f : run->files) {
    for (std::size_t i = 0; i < f->train_ids().size(); ++i) {
      if (included(*f, i)) all.push_back(f->train_ids()[i]);
    }
  }
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  run->train_ids = std::move(all);
  const std::size_t num_trains = run->train_ids.size();
  auto position_of = [&](std::uint64_t tid) {
    return static_cast<std::size_t>(std::lower_bound(run->train_ids.begin(), run->train_ids.end(), tid) -
                                    run->train_ids.begin());
  };

  for (std::size_t fi = 0; fi < run->files.size(); ++fi) {
    const detail::RunFile& f = *run->files[fi];
    for (const auto& [name, fsrc] : f.sources()) {
      auto [it, inserted] = run->sources.try_emplace(name);
      detail::SourceInfo& src = it->second;
      if (inserted) {
        src.control = fsrc.control;
      } else if (src.control != fsrc.control) {
        throw FormatError(f.path() + ": source " + name + " is CONTROL in one file and INSTRUMENT in another");
      }
      src.files.push_back(static_cast<std::int32_t>(fi));
      for (const auto& [key, fkey] : fsrc.keys) {
        if (src.keys.count(key) == 0) {
          src.keys.emplace(key, detail::KeyInfo{fkey.group, std::vector<std::size_t>(fkey.dims.begin() + 1, fkey.dims.end())});
        }
      }
      for (const auto& [group, index] : fsrc.groups) {
        auto& locations = src.groups[group];
        if (locations.empty()) locations.resize(num_trains);
      }
    }
  }

  // Where each train's rows are, per (source, group); a train in two files of one source is an error.
  for (auto& [name, src] : run->sources) {
    std::unordered_map<std::uint64_t, std::int32_t> seen;
    for (std::int32_t fi : src.files) {
      const detail::RunFile& f = *run->files[static_cast<std::size_t>(fi)];
      const auto& fsrc = f.sources().at(name);
      for (std::size_t i = 0; i < f.train_ids().size(); ++i) {
        if (!included(f, i)) continue;
        const std::uint64_t tid = f.train_ids()[i];
        const auto [where, fresh] = seen.emplace(tid, fi);
        if (!fresh) {
          throw FormatError("conflicting data: train " + std::to_string(tid) + " of source " + name + " is in " +
                            run->files[static_cast<std::size_t>(where->second)]->path() +
                            (where->second == fi ? " twice" : " and in " + f.path()));
        }
        const std::size_t p = position_of(tid);
        for (const auto& [group, index] : fsrc.groups) {
          src.groups[group][p] = detail::Location{fi, index.first[i], index.count[i]};
        }
      }
    }
  }

  DataCollection collection;
  auto selection = std::make_shared<detail::Selection>();
  for (const auto& [name, src] : run->sources) {
    auto& keys = (*selection)[name];
    for (const auto& [key, info] : src.keys) keys.push_back(key);
  }
  collection.positions_.resize(num_trains);
  for (std::size_t i = 0; i < num_trains; ++i) collection.positions_[i] = i;
  collection.train_ids_ = run->train_ids;
  collection.run_ = std::move(run);
  collection.selection_ = std::move(selection);
  collection.skipped_ = std::make_shared<const std::vector<std::pair<std::string, std::string>>>(std::move(skipped));
  return collection;
}

std::vector<std::string> DataCollection::files() const {
  std::vector<std::string> paths;
  for (const auto& f : run_->files) paths.push_back(f->path());
  return paths;
}

std::vector<std::string> DataCollection::all_sources() const {
  std::vector<std::string> names;
  for (const auto& [name, keys] : *selection_) names.push_back(name);
  return names;
}

std::vector<std::string> DataCollection::control_sources() const {
  std::vector<std::string> names;
  for (const auto& [name, keys] : *selection_) {
    if (run_->sources.at(name).control) names.push_back(name);
  }
  return names;
}

std::vector<std::string> DataCollection::instrument_sources() const {
  std::vector<std::string> names;
  for (const auto& [name, keys] : *selection_) {
    if (!run_->sources.at(name).control) names.push_back(name);
  }
  return names;
}

std::vector<std::string> DataCollection::keys_for_source(const std::string& source) const {
  const auto it = selection_->find(source);
  if (it == selection_->end()) throw std::invalid_argument("pasha::xfel: source " + source + " is not selected");
  return it->second;
}

std::vector<std::string> DataCollection::index_groups(const std::string& source) const {
  std::set<std::string> groups;
  for (const std::string& key : keys_for_source(source)) groups.insert(run_->sources.at(source).keys.at(key).group);
  return {groups.begin(), groups.end()};
}

std::string DataCollection::resolve_key(const std::string& source, const std::string& key) const {
  const auto it = selection_->find(source);
  if (it == selection_->end()) throw std::invalid_argument("pasha::xfel: source " + source + " is not selected");
  const auto& keys = it->second;
  if (std::binary_search(keys.begin(), keys.end(), key)) return key;
  if (run_->sources.at(source).control && std::binary_search(keys.begin(), keys.end(), key + ".value")) {
    return key + ".value";
  }
  throw std::invalid_argument("pasha::xfel: key " + key + " of source " + source + " is not selected");
}

DataCollection DataCollection::select(std::string_view source_glob, std::string_view key_glob) const {
  return select({{std::string(source_glob), std::string(key_glob)}});
}

DataCollection DataCollection::select(const std::vector<std::pair<std::string, std::string>>& patterns) const {
  auto selection = std::make_shared<detail::Selection>();
  for (const auto& [source_glob, key_glob] : patterns) {
    bool matched = false;
    for (const auto& [name, keys] : *selection_) {
      if (!detail::glob_match(source_glob, name)) continue;
      std::vector<std::string> chosen;
      for (const std::string& key : keys) {
        if (detail::glob_match(key_glob, key)) chosen.push_back(key);
      }
      if (chosen.empty()) continue;
      matched = true;
      auto& target = (*selection)[name];
      target.insert(target.end(), chosen.begin(), chosen.end());
      std::sort(target.begin(), target.end());
      target.erase(std::unique(target.begin(), target.end()), target.end());
    }
    if (!matched) {
      throw std::invalid_argument("pasha::xfel::select: no source matching '" + source_glob +
                                  "' has keys matching '" + key_glob + "'");
    }
  }
  DataCollection result = *this;
  result.selection_ = std::move(selection);
  return result;
}

DataCollection DataCollection::with_positions(std::vector<std::size_t> positions) const {
  DataCollection result = *this;
  result.train_ids_.clear();
  for (std::size_t p : positions) result.train_ids_.push_back(run_->train_ids[p]);
  result.positions_ = std::move(positions);
  return result;
}

DataCollection DataCollection::select_trains(const TrainSelection& selection) const {
  std::vector<std::size_t> positions;
  switch (selection.kind()) {
    case TrainSelection::Kind::index_range: {
      const std::size_t end = std::min<std::uint64_t>(selection.end(), size());
      for (std::size_t i = selection.begin(); i < end; ++i) positions.push_back(positions_[i]);
      break;
    }
    case TrainSelection::Kind::id_range:
      for (std::size_t i = 0; i < size(); ++i) {
        if (train_ids_[i] >= selection.begin() && train_ids_[i] < selection.end()) positions.push_back(positions_[i]);
      }
      break;
    case TrainSelection::Kind::id_list:
      for (std::size_t i = 0; i < size(); ++i) {
        if (std::binary_search(selection.ids().begin(), selection.ids().end(), train_ids_[i])) {
          positions.push_back(positions_[i]);
        }
      }
      break;
  }
  return with_positions(std::move(positions));
}

std::vector<std::uint64_t> DataCollection::data_counts(const std::string& source, const std::string& key) const {
  const std::string resolved = resolve_key(source, key);
  const detail::SourceInfo& src = run_->sources.at(source);
  const auto& locations = src.groups.at(src.keys.at(resolved).group);
  std::vector<std::uint64_t> counts(size());
  for (std::size_t i = 0; i < size(); ++i) counts[i] = locations[positions_[i]].count;
  return counts;
}

void DataCollection::close() const {
  for (const auto& f : run_->files) f->close();
}

bool TrainData::has(const std::string& source, const std::string& key) const {
  const auto it = selection_->find(source);
  if (it == selection_->end()) return false;
  const detail::SourceInfo& src = run_->sources.at(source);
  std::string resolved = key;
  if (!std::binary_search(it->second.begin(), it->second.end(), resolved)) {
    resolved = key + ".value";
    if (!src.control || !std::binary_search(it->second.begin(), it->second.end(), resolved)) return false;
  }
  return src.groups.at(src.keys.at(resolved).group)[position_].count > 0;
}

std::string TrainData::resolved_key(const std::string& source, const std::string& key) const {
  const auto it = selection_->find(source);
  if (it == selection_->end()) throw std::invalid_argument("pasha::xfel: source " + source + " is not selected");
  if (std::binary_search(it->second.begin(), it->second.end(), key)) return key;
  if (run_->sources.at(source).control && std::binary_search(it->second.begin(), it->second.end(), key + ".value")) {
    return key + ".value";
  }
  throw std::invalid_argument("pasha::xfel: key " + key + " of source " + source + " is not selected");
}

std::pair<const detail::KeyInfo*, detail::Location> TrainData::locate(const std::string& source,
                                                                       const std::string& key) const {
  const std::string resolved = resolved_key(source, key);
  const detail::SourceInfo& src = run_->sources.at(source);
  const detail::KeyInfo& info = src.keys.at(resolved);
  const detail::Location loc = src.groups.at(info.group)[position_];
  detail::validate_location(*run_, source, resolved, loc, info.entry_shape);
  return {&info, loc};
}

}  // namespace pasha::xfel
