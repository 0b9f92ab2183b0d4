// The n-d array adapter: NdarrayFunctor maps over a pasha::Array along one axis.
//
// Mapping an Array directly goes along its first axis; `pasha::along(array, axis)` picks another, by
// number or by name (`pasha::along(a, "pulse")`). Sub-arrays keep the names of their axes.
// The kernel gets the sub-arrays at each position along the axis, one dimension fewer, sharing the
// array's memory: kernel(worker_id, index, pasha::Array<T> sub). Along a 1-d array the sub-arrays
// are 0-d arrays, which convert to a reference to their element, so a kernel may equally take the
// element itself: kernel(worker_id, index, T value) or (worker_id, index, T& element).
//
// A generic kernel (a lambda with `auto` parameters) always gets pasha::Array<T>: over a matrix,
// `[&](int, std::size_t i, auto row) { for (double v : row) ...; }` walks row i, and over a 1-d array
// `[&](int, std::size_t i, auto v) { out[i] = 3 * v; }` works through that conversion.
//
// Sub-arrays handed to a kernel are views (Array::unowned): valid during the call, while the mapped
// array keeps the memory alive; copying them costs no reference count.
#ifndef PASHA_FUNCTORS_NDARRAY_NDARRAY_H_
#define PASHA_FUNCTORS_NDARRAY_NDARRAY_H_

#include <concepts>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#include "pasha/core/array.h"
#include "pasha/core/functor.h"

namespace pasha {

namespace detail {
// Whether a visitor's kernel is generic (a template): asking whether it accepts a type would then
// instantiate its body, so pasha does not ask.
template <class Visit>
constexpr bool kernel_is_generic() {
  if constexpr (requires { std::remove_cvref_t<Visit>::kKernelIsGeneric; }) {
    return std::remove_cvref_t<Visit>::kKernelIsGeneric;
  } else {
    return false;
  }
}
}  // namespace detail

// An indexed functor over the positions along one axis of an Array.
template <class T>
class NdarrayFunctor {
 public:
  // Throws std::invalid_argument when `axis` is not an axis of `array`.
  NdarrayFunctor(Array<T> array, std::size_t axis) : array_(std::move(array)), view_(array_.unowned()), axis_(axis) {
    if (axis_ >= array_.ndim()) {
      throw std::invalid_argument("pasha: axis " + std::to_string(axis_) + " is out of range for a " +
                                  std::to_string(array_.ndim()) + "-d array");
    }
  }

  std::size_t size() const { return array_.shape()[axis_]; }
  std::size_t axis() const { return axis_; }

  // Kernel exceptions unwind through iterate: it holds nothing they could leak.
  static constexpr bool pasha_exceptions_pass_through = true;

  template <class Visit>
  void iterate(const IndexRange& share, Visit&& visit) const {
    if constexpr (detail::kernel_is_generic<Visit>()) {
      visit_subarrays(share, visit);
    } else {
      constexpr bool takes_elements = std::invocable<Visit&, std::size_t, T&>;
      constexpr bool takes_subarrays = std::invocable<Visit&, std::size_t, Array<T>>;
      static_assert(takes_elements || takes_subarrays,
                    "pasha: a kernel mapped over pasha::Array<T> must accept (worker_id, index, pasha::Array<T>) "
                    "(sub-arrays), or (worker_id, index, T) or (worker_id, index, T&) for the elements of a 1-d array");
      if constexpr (takes_elements) {
        if (view_.ndim() != 1) {
          throw std::invalid_argument("pasha: the kernel takes elements, but mapping over a " +
                                      std::to_string(view_.ndim()) +
                                      "-d array gives sub-arrays: accept a pasha::Array<T> (or auto) instead");
        }
        T* data = view_.data();
        const std::ptrdiff_t stride = view_.strides()[0];
        for (std::size_t i = share.begin; i < share.end; ++i) visit(i, data[static_cast<std::ptrdiff_t>(i) * stride]);
      } else {
        visit_subarrays(share, visit);
      }
    }
  }

 private:
  template <class Visit>
  void visit_subarrays(const IndexRange& share, Visit& visit) const {
    for (std::size_t i = share.begin; i < share.end; ++i) visit(i, view_.slice(axis_, i));
  }

  Array<T> array_;  // keeps the memory alive for the map
  Array<T> view_;   // the same, unowned: sub-arrays copied from it touch no reference count
  std::size_t axis_;
};

// Maps along `axis` of `array` (any integer type: an int, or a std::size_t computed from ndim(),
// checked as it is, never cut to an int); negative axes count from the end, as in numpy. Throws
// std::invalid_argument naming the axis when it is out of range.
template <class T, std::integral Axis>
  requires(!std::same_as<Axis, bool>)
NdarrayFunctor<T> along(const Array<T>& array, Axis axis) {
  const auto ndim = static_cast<long long>(array.ndim());
  bool in_range = false;
  long long resolved = 0;
  if constexpr (std::is_signed_v<Axis>) {
    const auto a = static_cast<long long>(axis);
    in_range = a >= -ndim && a < ndim;
    resolved = a < 0 ? a + ndim : a;
  } else {
    const auto a = static_cast<unsigned long long>(axis);
    in_range = a < static_cast<unsigned long long>(ndim);
    resolved = static_cast<long long>(a);
  }
  if (!in_range) {
    throw std::invalid_argument("pasha::along: axis " + std::to_string(+axis) + " is out of range for a " +
                                std::to_string(ndim) + "-d array");
  }
  return NdarrayFunctor<T>(array, static_cast<std::size_t>(resolved));
}
// Anything else that converts to int (an unscoped enum of axes, say).
template <class T>
NdarrayFunctor<T> along(const Array<T>& array, int axis) {
  return along<T, int>(array, axis);
}

// A pasha::Array maps along its first axis.
template <class T>
struct FunctorAdapter<Array<T>> {
  static NdarrayFunctor<T> make(const Array<T>& array) { return NdarrayFunctor<T>(array, 0); }
};

// Maps along the axis called `name` (Array::named, the `.axes` option of alloc). Throws
// std::invalid_argument naming it and the array's axes when there is none.
template <class T>
NdarrayFunctor<T> along(const Array<T>& array, std::string_view name) {
  return NdarrayFunctor<T>(array, array.axis(name));
}
template <class T>
NdarrayFunctor<T> along(const Array<T>& array, const char* name) {
  return along(array, std::string_view(name));
}

}  // namespace pasha

#endif  // PASHA_FUNCTORS_NDARRAY_NDARRAY_H_
