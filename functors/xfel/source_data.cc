#include "functors/xfel/source_data.h"

#include <optional>
#include <string>
#include <utility>

namespace pasha::xfel {

SourceData DataCollection::source_data(const std::string& source) const { return SourceData(*this, source); }

SourceData::SourceData(DataCollection collection, std::string source)
    : collection_(std::move(collection)), source_(std::move(source)) {
  keys_ = collection_.keys_for_source(source_);  // throws for a source that is not selected
  for (const std::string& key : keys_) resolved_.emplace(key, collection_.run_->resolve(source_, key));
}

const std::string& SourceTrain::source() const noexcept { return data_->source_; }

const std::vector<std::string>& SourceTrain::keys() const noexcept { return data_->keys_; }

bool SourceTrain::has(const std::string& key) const {
  const DataCollection& collection = data_->collection_;
  const std::optional<std::string> stored =
      detail::stored_key(*collection.run_, *collection.selection_, data_->source_, key);
  return stored && data_->resolved_.at(*stored)->location(position_).count > 0;
}

const detail::ResolvedKey& SourceTrain::resolved(const std::string& key) const {
  const DataCollection& collection = data_->collection_;
  return *data_->resolved_.at(detail::stored_key_or_throw(*collection.run_, *collection.selection_, data_->source_, key));
}

}  // namespace pasha::xfel
