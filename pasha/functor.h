// Functors: how pasha splits a collection into shares, one per worker, and walks a share.
//
// A functor is any type with
//   auto split(int num_workers)            -> a range of at most num_workers shares, share i for worker i
//   template <class V> void iterate(const Share& share, V&& visit)
//                                          -> calls visit(index, values...) for each element of the share
// and the kernel is then called as kernel(worker_id, index, values...). `iterate` may run concurrently
// on several threads for different shares, and in forked worker processes.
//
// A functor whose shares are pasha::IndexRange and that has `std::size_t size()` is an *indexed*
// functor: pasha may then cut its shares into chunks, which gives prompt cancellation after an error
// and dynamic scheduling. The built-in adapters (ranges, arrays, XFEL runs) are all indexed.
//
// Collections become mappable in one of three ways, tried in this order of preference but never
// together (a type that matches two is a compile error): the type is a functor itself; an ADL
// function `pasha_functor(const T&)` returns a functor for it; or it is a built-in case (a sized
// random-access range, or a pasha::Array).
#ifndef PASHA_FUNCTOR_H_
#define PASHA_FUNCTOR_H_

#include <concepts>
#include <cstddef>
#include <ranges>
#include <type_traits>
#include <utility>
#include <vector>

namespace pasha {

// A half-open range of positions [begin, end): the share type of indexed functors.
struct IndexRange {
  std::size_t begin = 0;
  std::size_t end = 0;
  std::size_t size() const noexcept { return end - begin; }
  friend bool operator==(const IndexRange&, const IndexRange&) = default;
};

// Splits positions [0, size) into at most `num_workers` contiguous, ascending, non-empty shares whose
// sizes differ by at most one (EXtra-pasha's gen_split_slices without the empty slices).
std::vector<IndexRange> split_evenly(std::size_t size, int num_workers);

namespace detail {

// A visitor that accepts anything, used only to ask whether `iterate` can be called.
struct AnyVisitor {
  template <class... Values>
  void operator()(std::size_t, Values&&...) const {}
};

template <class F>
using split_result_t = decltype(std::declval<F&>().split(1));

}  // namespace detail

template <class F>
concept Functor = requires(F& functor) {
  { functor.split(1) } -> std::ranges::input_range;
} && requires(F& functor, const std::ranges::range_value_t<detail::split_result_t<F>>& share) {
  functor.iterate(share, detail::AnyVisitor{});
};

// The type of one share of functor F.
template <Functor F>
using share_t = std::ranges::range_value_t<detail::split_result_t<F>>;

template <class F>
concept IndexedFunctor = Functor<F> && std::same_as<share_t<F>, IndexRange> && requires(const F& functor) {
  { functor.size() } -> std::convertible_to<std::size_t>;
};

}  // namespace pasha

#endif  // PASHA_FUNCTOR_H_
