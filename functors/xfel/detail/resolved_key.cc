#include "functors/xfel/detail/resolved_key.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "functors/xfel/detail/hdf5.h"
#include "functors/xfel/detail/run_file.h"

namespace pasha::xfel::detail {
namespace {

// The file's record of the key, which ResolvedKey::PerFile keeps type-erased (RunFile is not in the
// public header).
template <class PerFile>
const RunFile::Key& key_in(const PerFile& per_file) {
  return *static_cast<const RunFile::Key*>(per_file.key);
}

}  // namespace

std::optional<std::string> stored_key(const Run& run, const Selection& selection, const std::string& source,
                                      const std::string& key) {
  const auto it = selection.find(source);
  if (it == selection.end()) return std::nullopt;
  const auto& keys = it->second;
  if (std::binary_search(keys.begin(), keys.end(), key)) return key;
  if (run.sources.at(source).control && std::binary_search(keys.begin(), keys.end(), key + ".value")) {
    return key + ".value";
  }
  return std::nullopt;
}

std::string stored_key_or_throw(const Run& run, const Selection& selection, const std::string& source,
                                const std::string& key) {
  if (selection.count(source) == 0) throw std::invalid_argument("pasha::xfel: source " + source + " is not selected");
  if (auto stored = stored_key(run, selection, source, key)) return *stored;
  throw std::invalid_argument("pasha::xfel: key " + key + " of source " + source + " is not selected");
}

std::shared_ptr<const ResolvedKey> Run::resolve(const std::string& source, const std::string& key) const {
  const Hdf5Guard guard;  // the cache's lock
  auto& slot = resolved[{source, key}];
  if (!slot) slot = std::make_shared<const ResolvedKey>(*this, source, key);
  return slot;
}

ResolvedKey::ResolvedKey(const Run& run, const std::string& source, const std::string& key)
    : run_(run), source_(source), key_(key), files_(new PerFile[run.files.size()]) {
  const SourceInfo& src = run.sources.at(source);
  info_ = &src.keys.at(key);
  locations_ = &src.groups.at(info_->group);
  for (std::size_t e : info_->entry_shape) row_elements_ *= e;
  for (std::int32_t f : src.files) {
    const RunFile& file = *run.files[static_cast<std::size_t>(f)];
    PerFile& per_file = files_[static_cast<std::size_t>(f)];
    per_file.file = &file;
    const auto& keys = file.sources().at(source).keys;
    if (const auto it = keys.find(key); it != keys.end()) per_file.key = &it->second;
  }
}

// Throws FormatError unless loc's rows exist in its file's dataset, of the key's entry shape.
void ResolvedKey::check_location(const Location& loc) const {
  if (loc.count == 0) return;
  const PerFile& per_file = files_[static_cast<std::size_t>(loc.file)];
  const RunFile& file = *run_.files[static_cast<std::size_t>(loc.file)];
  if (per_file.key == nullptr) {
    fail(file.path(), "", "key " + key_ + " of source " + source_ + " is not in this file, but the index gives it rows");
  }
  const auto& key = key_in(per_file);
  const auto& entry = info_->entry_shape;
  if (key.dims.size() != entry.size() + 1 || !std::equal(entry.begin(), entry.end(), key.dims.begin() + 1)) {
    fail(file.path(), key.dataset, "entry shape differs from the other files of " + source_ + " " + key_);
  }
  if (loc.first > key.dims[0] || loc.count > key.dims[0] - loc.first) {
    fail(file.path(), key.dataset,
         "the index points at rows [" + std::to_string(loc.first) + ", " + std::to_string(loc.first) + " + " +
             std::to_string(loc.count) + ") but the dataset has " + std::to_string(key.dims[0]) + " rows");
  }
}

// What is known of reading `file` as `type`, found out on first use (an HDF5 call, under its lock);
// several threads may find it out at once, with the same result.
const ResolvedKey::PerType& ResolvedKey::prepared(std::int32_t file, ElementType type) const {
  const PerFile& per_file = files_[static_cast<std::size_t>(file)];
  PerType& per_type = const_cast<PerType&>(per_file.types[static_cast<std::size_t>(type)]);
  if (per_type.state.load(std::memory_order_acquire) != kUnknown) return per_type;
  const auto raw = per_file.file->prepare(key_in(per_file), type);
  if (raw) per_type.offset = raw->offset;
  per_type.state.store(raw ? kRaw : kThroughHdf5, std::memory_order_release);
  return per_type;
}

void ResolvedKey::validate(std::size_t position, ElementType type) const {
  const Location& loc = location(position);
  check_location(loc);
  if (loc.count > 0) prepared(loc.file, type);
}

void ResolvedKey::validate(const std::vector<std::size_t>& positions, ElementType type) const {
  std::vector<bool> prepared_files(run_.files.size(), false);
  for (std::size_t p : positions) {
    const Location& loc = location(p);
    check_location(loc);
    if (loc.count > 0 && !prepared_files[static_cast<std::size_t>(loc.file)]) {
      prepared(loc.file, type);
      prepared_files[static_cast<std::size_t>(loc.file)] = true;
    }
  }
  // A key with no rows in the selection is still checked for its type, in the first file that has it.
  if (std::find(prepared_files.begin(), prepared_files.end(), true) != prepared_files.end()) return;
  for (std::int32_t f : run_.sources.at(source_).files) {
    if (files_[static_cast<std::size_t>(f)].key != nullptr) {
      prepared(f, type);
      return;
    }
  }
}

void ResolvedKey::read(const Location& loc, ElementType type, void* out) const {
  if (loc.count == 0) return;
  const PerType& per_type = prepared(loc.file, type);
  const PerFile& per_file = files_[static_cast<std::size_t>(loc.file)];
  const auto& key = key_in(per_file);
  if (per_type.state.load(std::memory_order_acquire) == kRaw) {
    const std::uint64_t row_bytes = row_elements_ * element_size(type);
    per_file.file->pread_bytes(per_type.offset + loc.first * row_bytes, loc.count * row_bytes, out, key.dataset);
  } else {
    per_file.file->read(key, loc.first, loc.count, type, out);
  }
}

void* ResolvedKey::map(const Location& loc, ElementType type, FileWindow& window) const {
  const std::uint64_t bytes = loc.count * row_elements_ * element_size(type);
  if (loc.count == 0 || bytes < FileWindow::min_bytes().load(std::memory_order_relaxed)) return nullptr;
  const PerType& per_type = prepared(loc.file, type);
  if (per_type.state.load(std::memory_order_acquire) != kRaw) return nullptr;
  const PerFile& per_file = files_[static_cast<std::size_t>(loc.file)];
  const auto& key = key_in(per_file);
  return per_file.file->map(window, per_type.offset + loc.first * row_elements_ * element_size(type), bytes,
                    key.dataset);
}

}  // namespace pasha::xfel::detail
