// Functors: how pasha splits a collection into shares and walks a share.
//
// A functor is any type with
//   auto split(int num_workers)            -> a range of shares
//   template <class V> void iterate(const Share& share, V&& visit)
//                                          -> calls visit(index, values...) for each element of the share
// and the kernel is then called as kernel(worker_id, index, values...). `iterate` may run concurrently
// on several threads for different shares, and in forked worker processes.
//
// Shares and workers: when split(n) returns at most n shares, worker w runs share w (shares beyond
// the count leave their workers idle). When it returns more (one share per file, per module, ...),
// shares are handed out in ascending order to whichever worker is free, as a pool would: a worker
// then runs several shares, and which worker runs which share depends on timing.
//
// Stopping early: visit(...) returns true while the map goes on and false once it has been cancelled
// (a worker failed); after false, further visits do nothing. A functor may stop walking its share
// when it sees false; one that ignores the result still stops calling kernels. pasha never throws
// through a functor's iterate to stop it, so iterate may be noexcept or walk a C callback API.
//
// Exceptions: pasha never throws through a functor's iterate. A kernel's exception is kept by the
// visitor (which then returns false) and rethrown after iterate returns, unless the functor declares
//   static constexpr bool pasha_exceptions_pass_through = true;
// which lets kernel exceptions unwind through its iterate directly and spares the per-element
// bookkeeping: for functors that are exception-safe and not noexcept, as pasha's own adapters are.
//
// A functor whose shares are pasha::IndexRange and that has `std::size_t size()` is an *indexed*
// functor: pasha may then cut its shares into chunks, which gives dynamic scheduling, and split may
// be left out (pasha then splits [0, size()) evenly). The built-in adapters (ranges, arrays, XFEL
// runs) are all indexed.
//
// Collections become mappable in one of three ways, never two at once (a type that matches two is a
// compile error): the type is a functor itself; an ADL function `pasha_functor(const T&)` returns a
// functor for it (for your own types, EXtra-pasha's `_pasha_functor_`); or an adapter specialises
// pasha::FunctorAdapter for it (below). pasha's own adapters for ranges (functors/sequence), arrays
// (functors/ndarray) and XFEL runs (functors/xfel) are built the same way a third party's would be;
// the core knows none of them.
#ifndef PASHA_CORE_FUNCTOR_H_
#define PASHA_CORE_FUNCTOR_H_

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
// sizes differ by at most one (EXtra-pasha's gen_split_slices without the empty slices). Throws
// std::invalid_argument when num_workers < 1.
std::vector<IndexRange> split_evenly(std::size_t size, int num_workers);

namespace detail {

// A visitor that accepts anything, used only to ask whether `iterate` can be called.
struct AnyVisitor {
  template <class... Values>
  bool operator()(std::size_t, Values&&...) const {
    return true;
  }
};

template <class F>
concept HasSize = requires(const F& functor) {
  { functor.size() } -> std::convertible_to<std::size_t>;
};

template <class F>
concept HasSplit = requires(F& functor) {
  { functor.split(1) } -> std::ranges::input_range;
};

template <class F>
struct ShareOf {
  using type = IndexRange;  // a functor without split: indexed, split evenly by pasha
};
template <HasSplit F>
struct ShareOf<F> {
  using type = std::ranges::range_value_t<decltype(std::declval<F&>().split(1))>;
};

}  // namespace detail

// The customisation point for adapters, as fmt's formatter: a specialisation for a type (or a
// constrained partial specialisation for a family of types) makes it mappable,
//
//   template <>
//   struct pasha::FunctorAdapter<MyCollection> {
//     template <class Source>             // MyCollection, as map received it (const&, &&, ...)
//     static MyFunctor make(Source&& collection);
//   };
//
// and map(kernel, collection) then maps over make(collection). The specialisation must be visible
// wherever such a collection is mapped (include the adapter's header). The primary template adapts
// nothing.
template <class T>
struct FunctorAdapter {};

// The type of one share of functor F.
template <class F>
using share_t = typename detail::ShareOf<F>::type;

template <class F>
concept Functor = (detail::HasSplit<F> || detail::HasSize<F>) && requires(F& functor, const share_t<F>& share) {
  functor.iterate(share, detail::AnyVisitor{});
};

namespace detail {
template <class F>
constexpr bool passes_exceptions() {
  if constexpr (requires { std::remove_cvref_t<F>::pasha_exceptions_pass_through; }) {
    return std::remove_cvref_t<F>::pasha_exceptions_pass_through;
  } else {
    return false;
  }
}
}  // namespace detail

// Whether kernel exceptions may unwind through F's iterate (see above).
template <class F>
inline constexpr bool kPassesExceptions = detail::passes_exceptions<F>();

// Whether a pasha::FunctorAdapter specialisation makes Source (as passed to map) mappable.
template <class Source>
concept Adapted = requires(Source&& source) {
  { FunctorAdapter<std::remove_cvref_t<Source>>::make(std::forward<Source>(source)) } -> Functor;
};

template <class F>
concept IndexedFunctor = Functor<F> && std::same_as<share_t<F>, IndexRange> && detail::HasSize<F>;

// The shares of `functor` for `num_workers` workers: its own split, or for an indexed functor
// without one, [0, size()) split evenly.
template <Functor F>
std::vector<share_t<F>> split_shares(F& functor, int num_workers) {
  if constexpr (detail::HasSplit<F>) {
    std::vector<share_t<F>> shares;
    for (auto&& share : functor.split(num_workers)) shares.push_back(std::forward<decltype(share)>(share));
    return shares;
  } else {
    return split_evenly(static_cast<std::size_t>(functor.size()), num_workers);
  }
}

}  // namespace pasha

#endif  // PASHA_CORE_FUNCTOR_H_
