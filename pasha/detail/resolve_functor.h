// Finds the functor for whatever is passed to map(): the value itself, its pasha_functor(), or a
// built-in adapter. Internal to pasha.
#ifndef PASHA_DETAIL_RESOLVE_FUNCTOR_H_
#define PASHA_DETAIL_RESOLVE_FUNCTOR_H_

#include <type_traits>
#include <utility>

#include "pasha/array.h"
#include "pasha/functor.h"
#include "pasha/ndarray.h"
#include "pasha/sequence.h"

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

template <class T>
struct IsArray : std::false_type {};
template <class T>
struct IsArray<Array<T>> : std::true_type {};

template <class S>
concept IsFunctorItself = Functor<std::remove_cvref_t<S>>;
template <class S>
concept HasAdlFunctor = adl::HasPashaFunctor<std::remove_cvref_t<S>>;
template <class S>
concept IsPashaArray = IsArray<std::remove_cvref_t<S>>::value;
template <class S>
concept IsSequence = SequenceLike<std::remove_cvref_t<S>> && !IsPashaArray<S>;

template <class Source>
decltype(auto) as_functor(Source&& source) {
  constexpr int matches = int{IsFunctorItself<Source>} + int{HasAdlFunctor<Source>} + int{IsPashaArray<Source>} +
                          int{IsSequence<Source>};
  static_assert(matches <= 1,
                "pasha::map: this type matches more than one functor adapter (it is a functor itself, has an ADL "
                "pasha_functor(), is a pasha::Array, or is a sized random-access range); make it match only one");
  static_assert(matches == 1,
                "pasha::map: this type is not mappable: make it a functor (split + iterate), give it an ADL "
                "pasha_functor(const T&), or pass a sized random-access range or a pasha::Array");
  if constexpr (IsFunctorItself<Source>) {
    return std::forward<Source>(source);
  } else if constexpr (HasAdlFunctor<Source>) {
    return adl::call_pasha_functor(source);
  } else if constexpr (IsPashaArray<Source>) {
    return NdarrayFunctor(source, 0);
  } else {
    return make_sequence_functor(std::forward<Source>(source));
  }
}

}  // namespace pasha::detail

#endif  // PASHA_DETAIL_RESOLVE_FUNCTOR_H_
