// pasha::xfel::KeyData<T>: one key of one source over a collection's trains, read as T; mapping it
// gives each train's rows. See functors/xfel/xfel.h for the whole adapter.
#ifndef PASHA_FUNCTORS_XFEL_KEY_DATA_H_
#define PASHA_FUNCTORS_XFEL_KEY_DATA_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "functors/xfel/data_collection.h"
#include "functors/xfel/detail/file_window.h"
#include "functors/xfel/detail/resolved_key.h"
#include "functors/xfel/detail/rows.h"
#include "pasha/core/array.h"
#include "pasha/core/functor.h"

namespace pasha::xfel {

// One key of one source over the collection's trains, read as T (HDF5 converts the stored type).
// An indexed pasha functor: kernel(worker_id, index, train_id, pasha::Array<T> rows), `rows` a view of
// the worker's reused buffer (or, for large rows stored raw, of a private mapping of the file), valid
// during the call; the kernel may write to it without changing the file.
template <class T>
class KeyData {
 public:
  // Copies share the run. Moving is copying: a handle that was moved from stays whole and usable.
  KeyData(const KeyData&) = default;
  KeyData& operator=(const KeyData&) = default;

  const std::string& source() const noexcept { return source_; }
  const std::string& key() const noexcept { return key_; }
  const std::vector<std::uint64_t>& train_ids() const noexcept { return collection_.train_ids(); }
  // Shape of one row.
  Shape entry_shape() const { return Shape(resolved_->entry_shape()); }
  // (sum of counts,) + entry_shape.
  Shape shape() const { return detail::rows_shape(total_rows(), resolved_->entry_shape()); }
  std::size_t ndim() const { return resolved_->entry_shape().size() + 1; }
  // Rows per train, aligned with train_ids().
  std::vector<std::uint64_t> data_counts() const {
    std::vector<std::uint64_t> counts(size());
    for (std::size_t i = 0; i < size(); ++i) counts[i] = location(i).count;
    return counts;
  }
  // Train ids repeated by their counts: the train of each row of ndarray().
  std::vector<std::uint64_t> train_id_coordinates() const {
    std::vector<std::uint64_t> ids;
    for (std::size_t i = 0; i < size(); ++i) ids.insert(ids.end(), location(i).count, train_ids()[i]);
    return ids;
  }
  // All selected rows, in train order, in one new array. Consecutive rows of one file are read
  // together.
  Array<T> ndarray() const {
    Array<T> all = detail::heap_array<T>(shape());
    const std::size_t row_elements = resolved_->row_elements();
    std::size_t row = 0;
    detail::Location pending;
    std::size_t pending_row = 0;
    auto flush = [&] {
      if (pending.count > 0) resolved_->read(pending, kType, all.data() + pending_row * row_elements);
    };
    for (std::size_t i = 0; i < size(); ++i) {
      const detail::Location& loc = location(i);
      if (loc.count == 0) continue;
      if (pending.count > 0 && loc.file == pending.file && loc.first == pending.first + pending.count) {
        pending.count += loc.count;
      } else {
        flush();
        pending = loc;
        pending_row = row;
      }
      row += loc.count;
    }
    flush();
    return all;
  }
  // The rows of the train at position `index` of train_ids(), shape (count, entry_shape...), in
  // memory of their own that the array owns: for code that may keep them past a kernel call (a
  // binding handing them to Python). Large rows stored as T are mapped from the file (a private
  // mapping, gone with the last handle), others read.
  Array<T> rows_of_train(std::size_t index) const {
    const detail::Location& loc = location(index);
    const Shape shape = detail::rows_shape(loc.count, resolved_->entry_shape());
    auto window = std::make_shared<detail::FileWindow>(0);
    if (T* rows = static_cast<T*>(resolved_->map(loc, kType, *window))) {
      return Array<T>(std::shared_ptr<void>(window, rows), rows, shape, Order::C);
    }
    Array<T> rows = detail::heap_array<T>(shape);
    if (loc.count > 0) resolved_->read(loc, kType, rows.data());
    return rows;
  }
  KeyData select_trains(const TrainSelection& selection) const {
    return KeyData(collection_.select_trains(selection), source_, key_);
  }
  // Closes the HDF5 handles and descriptors this process opened; later reads reopen them.
  void close() const { collection_.close(); }

  // Functor interface. Kernel exceptions unwind through iterate.
  static constexpr bool pasha_exceptions_pass_through = true;
  std::size_t size() const noexcept { return collection_.size(); }
  template <class Visit>
  void iterate(const IndexRange& share, Visit&& visit) const {
    const std::size_t row_elements = resolved_->row_elements();
    detail::FileWindow window;  // large rows are mapped, not copied; unmapped on the way out
    detail::RowsBuffer buffer;  // the others are read into this
    for (std::size_t i = share.begin; i < share.end; ++i) {
      const detail::Location& loc = location(i);
      T* rows = static_cast<T*>(resolved_->map(loc, kType, window));
      if (rows == nullptr) {
        rows = buffer.get<T>(static_cast<std::size_t>(loc.count) * row_elements);
        if (loc.count > 0) resolved_->read(loc, kType, rows);
      }
      visit(i, collection_.train_ids_[i],
            Array<T>(nullptr, rows, detail::rows_shape(loc.count, resolved_->entry_shape()), Order::C));
    }
  }

 private:
  friend class DataCollection;
  static constexpr ElementType kType = element_type_of<T>();

  // Resolves the key and validates every selected train's rows and files for T, once.
  KeyData(DataCollection collection, std::string source, std::string key)
      : collection_(std::move(collection)),
        source_(std::move(source)),
        key_(std::move(key)),
        resolved_(collection_.run_->resolve(source_, key_)) {
    resolved_->validate(collection_.positions_, kType);
  }
  const detail::Location& location(std::size_t i) const { return resolved_->location(collection_.positions_[i]); }
  std::uint64_t total_rows() const {
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < size(); ++i) n += location(i).count;
    return n;
  }

  DataCollection collection_;
  std::string source_;
  std::string key_;
  std::shared_ptr<const detail::ResolvedKey> resolved_;
};

template <class T>
KeyData<T> DataCollection::key_data(const std::string& source, const std::string& key) const {
  return KeyData<T>(*this, source, detail::stored_key_or_throw(*run_, *selection_, source, key));
}

}  // namespace pasha::xfel

#endif  // PASHA_FUNCTORS_XFEL_KEY_DATA_H_
