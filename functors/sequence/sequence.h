// The sequence adapter: makes any sized random-access range (std::vector, std::array, std::span,
// std::views::iota, ...) mappable, calling kernel(worker_id, index, element). A pasha::Array is left
// to the n-d array adapter (functors/ndarray).
//
// The range is not copied: an lvalue container is referred to (it must outlive the map), an rvalue
// view is kept by value and an rvalue container is moved in.
#ifndef PASHA_FUNCTORS_SEQUENCE_SEQUENCE_H_
#define PASHA_FUNCTORS_SEQUENCE_SEQUENCE_H_

#include <cstddef>
#include <iterator>
#include <ranges>
#include <utility>

#include "pasha/core/array.h"
#include "pasha/core/functor.h"

namespace pasha {

template <class R>
concept SequenceLike = std::ranges::random_access_range<R> && std::ranges::sized_range<R>;

namespace detail {
template <class T>
inline constexpr bool kIsPashaArray = false;
template <class T>
inline constexpr bool kIsPashaArray<Array<T>> = true;
}  // namespace detail

// An indexed functor over a view.
template <std::ranges::view V>
  requires SequenceLike<V>
class SequenceFunctor {
 public:
  explicit SequenceFunctor(V view) : view_(std::move(view)) {}

  // Kernel exceptions unwind through iterate: it holds nothing they could leak.
  static constexpr bool pasha_exceptions_pass_through = true;

  std::size_t size() const { return static_cast<std::size_t>(std::ranges::size(view_)); }

  template <class Visit>
  void iterate(const IndexRange& share, Visit&& visit) {
    if constexpr (std::ranges::contiguous_range<V>) {
      // A plain pointer keeps the loop simple enough for the compiler to vectorize.
      auto* data = std::ranges::data(view_);
      for (std::size_t i = share.begin; i < share.end; ++i) visit(i, data[i]);
    } else {
      auto first = std::ranges::begin(view_);
      using Difference = std::iter_difference_t<decltype(first)>;
      for (std::size_t i = share.begin; i < share.end; ++i) visit(i, first[static_cast<Difference>(i)]);
    }
  }

 private:
  V view_;
};

template <class R>
  requires SequenceLike<R> && std::ranges::viewable_range<R>
auto make_sequence_functor(R&& range) {
  return SequenceFunctor<std::views::all_t<R>>(std::views::all(std::forward<R>(range)));
}

template <class R>
  requires SequenceLike<R> && (!detail::kIsPashaArray<R>)
struct FunctorAdapter<R> {
  template <class Source>
  static auto make(Source&& range) {
    return make_sequence_functor(std::forward<Source>(range));
  }
};

}  // namespace pasha

#endif  // PASHA_FUNCTORS_SEQUENCE_SEQUENCE_H_
