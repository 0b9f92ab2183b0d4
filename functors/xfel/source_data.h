// pasha::xfel::SourceData: one source over a collection's trains with every selected key
// (EXtra-data's run[source]); mapping it gives each train as a SourceTrain. See functors/xfel/xfel.h
// for the whole adapter.
#ifndef PASHA_FUNCTORS_XFEL_SOURCE_DATA_H_
#define PASHA_FUNCTORS_XFEL_SOURCE_DATA_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "functors/xfel/data_collection.h"
#include "functors/xfel/detail/resolved_key.h"
#include "pasha/core/array.h"
#include "pasha/core/functor.h"

namespace pasha::xfel {

// One train of one source: what a kernel mapped over a SourceData receives. Valid during the call.
class SourceTrain {
 public:
  std::uint64_t train_id() const noexcept { return train_id_; }
  const std::string& source() const noexcept;
  // The selected keys of the source (CONTROL keys as "x.value" and "x.timestamp").
  const std::vector<std::string>& keys() const noexcept;
  // True when `key` is selected and has at least one row in this train.
  bool has(const std::string& key) const;
  // This train's rows of `key`, in a new array: shape (count, entry_shape...), count possibly 0.
  // CONTROL keys may be named without ".value". Throws std::invalid_argument for a key that is not
  // selected, FormatError when the file cannot be read as T.
  template <class T>
  Array<T> get(const std::string& key) const {
    return TrainData::read<T>(resolved(key), position_);
  }

 private:
  friend class SourceData;
  SourceTrain(const SourceData* data, std::size_t position, std::uint64_t train_id)
      : data_(data), position_(position), train_id_(train_id) {}
  const detail::ResolvedKey& resolved(const std::string& key) const;

  const SourceData* data_;
  std::size_t position_;
  std::uint64_t train_id_;
};

// One source over a collection's trains, with every selected key resolved once (EXtra-data's
// run[source]). An indexed pasha functor: kernel(worker_id, index, train_id, const SourceTrain&).
class SourceData {
 public:
  // Copies share the run. Moving is copying: a handle that was moved from stays whole and usable.
  SourceData(const SourceData&) = default;
  SourceData& operator=(const SourceData&) = default;

  const std::string& source() const noexcept { return source_; }
  const std::vector<std::string>& keys() const noexcept { return keys_; }
  const std::vector<std::uint64_t>& train_ids() const noexcept { return collection_.train_ids(); }
  SourceData select_trains(const TrainSelection& selection) const {
    return SourceData(collection_.select_trains(selection), source_);
  }

  // Functor interface. Kernel exceptions unwind through iterate.
  static constexpr bool pasha_exceptions_pass_through = true;
  std::size_t size() const noexcept { return collection_.size(); }
  template <class Visit>
  void iterate(const IndexRange& share, Visit&& visit) const {
    for (std::size_t i = share.begin; i < share.end; ++i) {
      const SourceTrain train(this, collection_.positions_[i], collection_.train_ids_[i]);
      visit(i, collection_.train_ids_[i], train);
    }
  }

 private:
  friend class DataCollection;
  friend class SourceTrain;
  SourceData(DataCollection collection, std::string source);

  DataCollection collection_;
  std::string source_;
  std::vector<std::string> keys_;
  std::map<std::string, std::shared_ptr<const detail::ResolvedKey>> resolved_;  // by stored key
};

}  // namespace pasha::xfel

#endif  // PASHA_FUNCTORS_XFEL_SOURCE_DATA_H_
