// How a map calls its kernel: KernelVisitor (visit(index, values...) -> kernel(worker_id, index,
// values...)), the guarded visitor for functors that do not let exceptions pass, the counting visitor for
// progress, iterate_share (a share walked the way its functor allows), and which kernels are generic.
// Internal to pasha.
#ifndef PASHA_CORE_DETAIL_KERNEL_VISITOR_H_
#define PASHA_CORE_DETAIL_KERNEL_VISITOR_H_

#include <cxxabi.h>
#include <algorithm>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <exception>
#include <type_traits>
#include <utility>

#include "pasha/core/functor.h"

namespace pasha::detail {

template <class K>
concept HasPlainCallOperator = requires { &K::operator(); };

// A kernel that says whether it is generic (a wrapper whose call operator is a constrained template,
// such as the helpers of pasha/core/helpers.h, is as generic as the kernel it wraps).
template <class K>
concept DeclaresGenericity = requires {
  { K::pasha_kernel_is_generic } -> std::convertible_to<bool>;
};

// A kernel whose call operator is a template (a lambda with auto parameters, say): asking whether it
// accepts some type would instantiate its body, so adapters must not ask.
template <class K>
constexpr bool is_generic_kernel() {
  if constexpr (DeclaresGenericity<K>) {
    return K::pasha_kernel_is_generic;
  } else {
    return std::is_class_v<K> && !HasPlainCallOperator<K>;
  }
}
template <class K>
inline constexpr bool kIsGenericKernel = is_generic_kernel<K>();

// The visitor a functor calls: visit(index, values...) -> kernel(worker_id, index, values...).
// Constrained, so that functors can ask which values a (non-generic) kernel accepts.
template <class Kernel>
struct KernelVisitor {
  static constexpr bool kKernelIsGeneric = kIsGenericKernel<std::remove_cvref_t<Kernel>>;
  Kernel& kernel;
  int worker_id;

  template <class... Values>
    requires std::invocable<Kernel&, int, std::size_t, Values...>
  bool operator()(std::size_t index, Values&&... values) const {
    kernel(worker_id, index, std::forward<Values>(values)...);
    return true;
  }
};

// The visitor for functors that do not let exceptions pass (pasha/core/functor.h): a kernel's exception is
// kept, not thrown through the functor's iterate (which may be noexcept, or walk a C callback API),
// and rethrown once iterate has returned. Once the map is cancelled, or a kernel has failed, it calls
// no kernel and returns false. It counts progress per element.
template <class Kernel>
struct GuardedKernelVisitor {
  static constexpr bool kKernelIsGeneric = KernelVisitor<Kernel>::kKernelIsGeneric;
  KernelVisitor<Kernel> visit;
  const std::atomic<bool>& cancelled;
  std::atomic<std::size_t>* progress;
  std::exception_ptr& error;

  template <class... Values>
    requires std::invocable<Kernel&, int, std::size_t, Values...>
  bool operator()(std::size_t index, Values&&... values) const {
    if (error || cancelled.load(std::memory_order_relaxed)) return false;
    try {
      visit(index, std::forward<Values>(values)...);
    } catch (const abi::__forced_unwind&) {
      throw;  // a thread being ended (pthread_exit: a Python daemon thread at exit): let it end
    } catch (...) {
      error = std::current_exception();
      return false;
    }
    if (progress != nullptr) progress->fetch_add(1, std::memory_order_relaxed);
    return true;
  }
};

// The visitor for functors that let exceptions pass, when a map reports progress and the functor
// is not indexed (its elements cannot be counted per chunk): counts each element.
template <class Kernel>
struct CountingKernelVisitor {
  static constexpr bool kKernelIsGeneric = KernelVisitor<Kernel>::kKernelIsGeneric;
  KernelVisitor<Kernel> visit;
  std::atomic<std::size_t>* progress;

  template <class... Values>
    requires std::invocable<Kernel&, int, std::size_t, Values...>
  bool operator()(std::size_t index, Values&&... values) const {
    visit(index, std::forward<Values>(values)...);
    progress->fetch_add(1, std::memory_order_relaxed);
    return true;
  }
};

// Walks `share` of `functor` with `visit`, the way the functor allows: straight for functors that let
// exceptions pass, guarded otherwise. `progress`, if not null, counts each element (indexed functors
// pass null and count per chunk).
template <class F, class Kernel>
void iterate_share(F& functor, const share_t<F>& share, const KernelVisitor<Kernel>& visit,
                   const std::atomic<bool>& cancelled, std::atomic<std::size_t>* progress) {
  if constexpr (kPassesExceptions<F>) {
    if (progress != nullptr) {
      functor.iterate(share, CountingKernelVisitor<Kernel>{visit, progress});
    } else {
      functor.iterate(share, visit);
    }
  } else {
    std::exception_ptr error;
    functor.iterate(share, GuardedKernelVisitor<Kernel>{visit, cancelled, progress, error});
    if (error) std::rethrow_exception(error);
  }
}

// Elements run between two looks at the cancel flag, for a share of `size` elements.
constexpr std::size_t cancel_check_interval(std::size_t size) noexcept {
  return std::clamp<std::size_t>(size / 64, 1, std::size_t{1} << 14);
}

}  // namespace pasha::detail

#endif  // PASHA_CORE_DETAIL_KERNEL_VISITOR_H_
