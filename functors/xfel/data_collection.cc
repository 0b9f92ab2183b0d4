#include "functors/xfel/data_collection.h"

#include <dirent.h>
#include <fnmatch.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <numeric>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "functors/xfel/detail/run_file.h"

namespace pasha::xfel {
namespace {

bool glob_match(const std::string& pattern, const std::string& text) {
  return ::fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

}  // namespace

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
    if (name.size() > 3 && name.ends_with(".h5") && name != "overview.h5") names.push_back(path + "/" + name);
  }
  ::closedir(dir);
  return RunFiles(names, options, path);
}

DataCollection RunFiles(std::vector<std::string> paths, const OpenOptions& options, const std::string& what) {
  std::sort(paths.begin(), paths.end());
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
  std::vector<std::shared_ptr<detail::RunFile>> files;
  std::vector<std::pair<std::string, std::string>> skipped;
  for (const std::string& file_path : paths) {
    try {
      files.push_back(detail::RunFile::open(file_path));
    } catch (const FormatError& error) {
      if (!options.skip_unreadable_files) throw;
      skipped.emplace_back(file_path, error.what());
    }
  }
  if (files.empty()) {
    throw FormatError((what.empty() ? std::string("the files given") : what) + ": no usable run files (*.h5)" +
                      (skipped.empty() ? std::string() : "; first problem: " + skipped.front().second));
  }
  return DataCollection::from_files(std::move(files), options, std::move(skipped));
}

namespace {

// The sorted, distinct ids of the trains the run's files hold (suspect ones only if asked for).
std::vector<std::uint64_t> union_of_train_ids(const detail::Run& run, const OpenOptions& options) {
  std::vector<std::uint64_t> all;
  for (const auto& f : run.files) {
    for (std::size_t i = 0; i < f->train_ids().size(); ++i) {
      if (options.inc_suspect_trains || f->valid()[i]) all.push_back(f->train_ids()[i]);
    }
  }
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  return all;
}

// Every source of every file, with the files that hold it, its keys and its index groups (one
// empty location per train, filled by locate_trains).
void merge_sources(detail::Run& run) {
  for (std::size_t fi = 0; fi < run.files.size(); ++fi) {
    const detail::RunFile& f = *run.files[fi];
    for (const auto& [name, fsrc] : f.sources()) {
      auto [it, inserted] = run.sources.try_emplace(name);
      detail::SourceInfo& src = it->second;
      if (inserted) {
        src.control = fsrc.control;
      } else if (src.control != fsrc.control) {
        throw FormatError(f.path() + ": source " + name + " is CONTROL in one file and INSTRUMENT in another");
      }
      src.files.push_back(static_cast<std::int32_t>(fi));
      for (const auto& [key, fkey] : fsrc.keys) {
        if (src.keys.count(key) == 0) {
          src.keys.emplace(key, detail::KeyInfo{fkey.group, std::vector<std::size_t>(fkey.dims.begin() + 1, fkey.dims.end()), fkey.stored});
        }
      }
      for (const auto& [group, index] : fsrc.groups) {
        auto& locations = src.groups[group];
        if (locations.empty()) locations.resize(run.train_ids.size());
      }
    }
  }
}

// Where each train's rows are, per (source, index group); a train in two files of one source is an
// error.
void locate_trains(detail::Run& run, const OpenOptions& options) {
  for (auto& [name, src] : run.sources) {
    std::unordered_map<std::uint64_t, std::int32_t> seen;
    for (std::int32_t fi : src.files) {
      const detail::RunFile& f = *run.files[static_cast<std::size_t>(fi)];
      const auto& fsrc = f.sources().at(name);
      for (std::size_t i = 0; i < f.train_ids().size(); ++i) {
        if (!options.inc_suspect_trains && !f.valid()[i]) continue;
        const std::uint64_t tid = f.train_ids()[i];
        const auto [where, fresh] = seen.emplace(tid, fi);
        if (!fresh) {
          throw FormatError("conflicting data: train " + std::to_string(tid) + " of source " + name + " is in " +
                            run.files[static_cast<std::size_t>(where->second)]->path() +
                            (where->second == fi ? " twice" : " and in " + f.path()));
        }
        const auto p = static_cast<std::size_t>(
            std::lower_bound(run.train_ids.begin(), run.train_ids.end(), tid) - run.train_ids.begin());
        for (const auto& [group, index] : fsrc.groups) {
          src.groups[group][p] = detail::Location{fi, index.first[i], index.count[i]};
        }
      }
    }
  }
}

}  // namespace

DataCollection DataCollection::from_files(std::vector<std::shared_ptr<detail::RunFile>> files,
                                          const OpenOptions& options,
                                          std::vector<std::pair<std::string, std::string>> skipped) {
  auto run = std::make_shared<detail::Run>();
  run->files = std::move(files);
  run->train_ids = union_of_train_ids(*run, options);
  merge_sources(*run);
  locate_trains(*run, options);

  auto selection = std::make_shared<detail::Selection>();
  for (const auto& [name, src] : run->sources) {
    auto& keys = (*selection)[name];
    for (const auto& [key, info] : src.keys) keys.push_back(key);
  }
  DataCollection collection;
  collection.positions_.resize(run->train_ids.size());
  std::iota(collection.positions_.begin(), collection.positions_.end(), std::size_t{0});
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

DataCollection DataCollection::select(std::string_view source_glob, std::string_view key_glob) const {
  return select({{std::string(source_glob), std::string(key_glob)}});
}

DataCollection DataCollection::select(const std::vector<std::pair<std::string, std::string>>& patterns) const {
  auto selection = std::make_shared<detail::Selection>();
  for (const auto& [source_glob, key_glob] : patterns) {
    bool matched = false;
    for (const auto& [name, keys] : *selection_) {
      if (!glob_match(source_glob, name)) continue;
      std::vector<std::string> chosen;
      for (const std::string& key : keys) {
        if (glob_match(key_glob, key)) chosen.push_back(key);
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

std::optional<ElementType> DataCollection::stored_type(const std::string& source, const std::string& key) const {
  const std::string stored = detail::stored_key_or_throw(*run_, *selection_, source, key);
  return run_->sources.at(source).keys.at(stored).stored_type;
}

std::vector<std::uint64_t> DataCollection::data_counts(const std::string& source, const std::string& key) const {
  const std::string resolved = detail::stored_key_or_throw(*run_, *selection_, source, key);
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
  const std::optional<std::string> stored = detail::stored_key(*run_, *selection_, source, key);
  if (!stored) return false;
  const detail::SourceInfo& src = run_->sources.at(source);
  return src.groups.at(src.keys.at(*stored).group)[position_].count > 0;
}

}  // namespace pasha::xfel
