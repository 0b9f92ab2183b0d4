// Finds the functor for whatever is passed to map(): the value itself, its pasha_functor(), or its
// pasha::FunctorAdapter. Internal to pasha.
#ifndef PASHA_CORE_DETAIL_RESOLVE_FUNCTOR_H_
#define PASHA_CORE_DETAIL_RESOLVE_FUNCTOR_H_

#include <type_traits>
#include <utility>

#include "pasha/core/functor.h"

namespace pasha::detail {

namespace adl {
void pasha_functor() = delete;  // makes the name known so that argument-dependent lookup finds the rest

template <class T>
concept HasPashaFunctor = requires(const T& value) {
  { pasha_functor(value) } -> Functor;
};

template <class T>
decltype(auto) call_pasha_functor(const T& value) {
  return pasha_functor(value);
}
}  // namespace adl

template <class S>
concept IsFunctorItself = Functor<std::remove_cvref_t<S>>;
template <class S>
concept HasAdlFunctor = adl::HasPashaFunctor<std::remove_cvref_t<S>>;

template <class Source>
decltype(auto) as_functor(Source&& source) {
  constexpr int matches = int{IsFunctorItself<Source>} + int{HasAdlFunctor<Source>} + int{Adapted<Source>};
  static_assert(matches <= 1,
                "pasha::map: this type matches more than one functor adapter (it is a functor itself, has an ADL "
                "pasha_functor(), or a pasha::FunctorAdapter, such as pasha's for sized random-access ranges and "
                "pasha::Array); make it match only one");
  static_assert(matches == 1,
                "pasha::map: this type is not mappable: make it a functor (split + iterate), give it an ADL "
                "pasha_functor(const T&), or specialise pasha::FunctorAdapter for it (ranges and pasha::Array are "
                "mappable through functors/sequence and functors/ndarray, which pasha/pasha.h includes)");
  if constexpr (IsFunctorItself<Source>) {
    return std::forward<Source>(source);
  } else if constexpr (HasAdlFunctor<Source>) {
    return adl::call_pasha_functor(source);
  } else if constexpr (Adapted<Source>) {
    return FunctorAdapter<std::remove_cvref_t<Source>>::make(std::forward<Source>(source));
  } else {
    return 0;  // not reached: the static_assert above has said why
  }
}

}  // namespace pasha::detail

#endif  // PASHA_CORE_DETAIL_RESOLVE_FUNCTOR_H_
