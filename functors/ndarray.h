// NdarrayFunctor: maps over a pasha::Array along one axis.
//
// Mapping an Array directly goes along its first axis; `pasha::along(array, axis)` picks another.
// Along a 1-d array the kernel gets elements: kernel(worker_id, index, T& element). Along an n-d array
// it gets sub-arrays, one dimension fewer, sharing the array's memory:
// kernel(worker_id, index, pasha::Array<T> row). A kernel that accepts both (a generic lambda) gets
// whichever the array's dimensionality gives.
#ifndef PASHA_FUNCTORS_NDARRAY_H_
#define PASHA_FUNCTORS_NDARRAY_H_

#include <concepts>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "pasha/array.h"
#include "pasha/functor.h"

namespace pasha {

template <class T>
class NdarrayFunctor {
 public:
  // Throws std::invalid_argument when `axis` is not an axis of `array`.
  NdarrayFunctor(Array<T> array, std::size_t axis) : array_(std::move(array)), axis_(axis) {
    if (axis_ >= array_.ndim()) {
      throw std::invalid_argument("pasha: axis " + std::to_string(axis_) + " is out of range for a " +
                                  std::to_string(array_.ndim()) + "-d array");
    }
  }

  std::size_t size() const { return array_.shape()[axis_]; }
  std::size_t axis() const { return axis_; }
  std::vector<IndexRange> split(int num_workers) const { return split_evenly(size(), num_workers); }

  template <class Visit>
  void iterate(const IndexRange& share, Visit&& visit) const {
    constexpr bool takes_elements = std::invocable<Visit&, std::size_t, T&>;
    constexpr bool takes_subarrays = std::invocable<Visit&, std::size_t, Array<T>>;
    static_assert(takes_elements || takes_subarrays,
                  "pasha: a kernel mapped over pasha::Array<T> must accept (worker_id, index, T) for 1-d arrays "
                  "or (worker_id, index, pasha::Array<T>) for n-d arrays");
    if constexpr (takes_elements) {
      if (array_.ndim() == 1) {
        T* data = array_.data();
        const std::ptrdiff_t stride = array_.strides()[0];
        for (std::size_t i = share.begin; i < share.end; ++i) {
          visit(i, data[static_cast<std::ptrdiff_t>(i) * stride]);
        }
        return;
      }
    }
    if constexpr (takes_subarrays) {
      for (std::size_t i = share.begin; i < share.end; ++i) visit(i, array_.slice(axis_, i));
    } else {
      throw std::invalid_argument("pasha: the kernel takes elements, but mapping over a " +
                                  std::to_string(array_.ndim()) +
                                  "-d array gives sub-arrays: accept a pasha::Array<T> instead");
    }
  }

 private:
  Array<T> array_;
  std::size_t axis_;
};

// Maps along `axis` of `array`; negative axes count from the end, as in numpy.
// Throws std::invalid_argument when the axis is out of range.
template <class T>
NdarrayFunctor<T> along(const Array<T>& array, int axis) {
  const int ndim = static_cast<int>(array.ndim());
  if (axis < -ndim || axis >= ndim) {
    throw std::invalid_argument("pasha::along: axis " + std::to_string(axis) + " is out of range for a " +
                                std::to_string(ndim) + "-d array");
  }
  return NdarrayFunctor<T>(array, static_cast<std::size_t>(axis < 0 ? axis + ndim : axis));
}

}  // namespace pasha

#endif  // PASHA_FUNCTORS_NDARRAY_H_
