// Helpers that change what one map does around its kernel (EXtra-pasha's util.py): per-worker setup
// and teardown, private per-worker copies of an array, and reductions. Each wraps a kernel and applies
// to the map it is given to, in every context (worker processes included), and only to that map:
//
//   double total = 0;
//   ctx.map(pasha::with_reduction(ctx, total, 0.0, std::plus<>(),
//                                 [&](int, std::size_t i, double v, double& partial) { partial += v; }),
//           values);
//
//   auto histogram = ctx.alloc<std::uint64_t>({256}, {.fill = 0});
//   ctx.map(pasha::with_local_copies(ctx, histogram, std::plus<>(),
//                                    [&](int, std::size_t i, std::uint8_t v, pasha::Array<std::uint64_t> mine) {
//                                      ++mine[v];
//                                    }),
//           pixels);
//
//   ctx.map(pasha::with_init([&](int worker_id) { open_my_file(worker_id); },
//           pasha::with_finalize(kernel, [&](int worker_id) { close_my_file(worker_id); })),
//           inputs);
//
// When each runs (the rules of pasha/core/hooks.h, whose per-map hooks the helpers are): `init` in each
// worker that gets work, before its first element; `finalize` in that worker after its last, also
// when the map fails (like a destructor). Copies and partials are set up in their worker the same
// way, and combined by the caller once the map has succeeded (its hooks' post_map included), in worker
// order over the workers that got work; if the map fails at any step, the combining operation's own
// included, the array or result is left as it was. They nest (with_init around
// with_reduction around ...), up to 64 deep, like scopes: an outer helper's setup runs before an inner
// one's and its teardown after, so with_init(open, with_finalize(kernel, close)) never closes what a
// failed open did not open. A helper made for one context works only with maps of that context, and
// with one map at a time: maps of the context called from several threads take turns (the context's
// map lock, which covers the combine step), and a map nested in a kernel while another map has the
// helper (a kernel of another worker, thread or process) throws std::logic_error; make one per map,
// or reuse it for maps one after the other (also after a map whose worker process was killed).
// Copies of a helper share its state, and so count as the same helper.
// In a map started from inside a kernel (which runs inline on that worker) they run too, as for a
// one-worker map.
//
// Helpers that combine (with_local_copies, with_reduction) need one caller: with an MpiContext of
// several ranks they throw std::invalid_argument (use a per-worker array from alloc and combine it
// after the map, on every rank).
#ifndef PASHA_CORE_HELPERS_H_
#define PASHA_CORE_HELPERS_H_

#include <concepts>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "pasha/core/array.h"
#include "pasha/core/context.h"
#include "pasha/core/detail/kernel_helper.h"
#include "pasha/core/hooks.h"

namespace pasha {

// init(worker_id) runs in each worker that gets work, before its first element of this map.
template <class Init, class Kernel>
class WithInit final : public detail::KernelHelper<Kernel> {
 public:
  WithInit(Init init, Kernel kernel) : detail::KernelHelper<Kernel>("pasha::with_init", nullptr, std::move(kernel)), init_(std::move(init)) {}

  template <class... Values>
    requires std::invocable<Kernel&, int, std::size_t, Values...>
  void operator()(int worker_id, std::size_t index, Values&&... values) const {
    this->kernel_(worker_id, index, std::forward<Values>(values)...);
  }
  void pre_worker(Context&, int worker_id) override { init_(worker_id); }

 private:
  mutable Init init_;
};

// finalize(worker_id) runs in each worker that got work, after its last element of this map (also
// when the map fails).
template <class Kernel, class Finalize>
class WithFinalize final : public detail::KernelHelper<Kernel> {
 public:
  WithFinalize(Kernel kernel, Finalize finalize)
      : detail::KernelHelper<Kernel>("pasha::with_finalize", nullptr, std::move(kernel)), finalize_(std::move(finalize)) {}

  template <class... Values>
    requires std::invocable<Kernel&, int, std::size_t, Values...>
  void operator()(int worker_id, std::size_t index, Values&&... values) const {
    this->kernel_(worker_id, index, std::forward<Values>(values)...);
  }
  void post_worker(Context&, int worker_id) override { finalize_(worker_id); }

 private:
  mutable Finalize finalize_;
};

// Each worker works on a private copy of `array`, made from it when the worker starts; the kernel
// gets the copy as its last argument: kernel(worker_id, index, values..., pasha::Array<T> copy).
// After the map, array[e] = combine(...combine(copy_a[e], copy_b[e])..., copy_z[e]) over the copies
// of the workers that got work, in worker order. The copies start equal to the array, so with
// std::plus start from zeros (or use with_reduction, whose partials start at an identity and which
// adds them to what the array holds).
template <class T, class Combine, class Kernel>
class WithLocalCopies final : public detail::KernelHelper<Kernel> {
 public:
  WithLocalCopies(Context& context, Array<T> array, Combine combine, Kernel kernel)
      : detail::KernelHelper<Kernel>("pasha::with_local_copies", &context, std::move(kernel)),
        array_(std::move(array)),
        copies_(context, Shape(array_.shape()), array_.order()),
        combine_(std::move(combine)) {}

  template <class... Values>
    requires std::invocable<Kernel&, int, std::size_t, Values..., Array<T>>
  void operator()(int worker_id, std::size_t index, Values&&... values) const {
    this->kernel_(worker_id, index, std::forward<Values>(values)..., copies_.of(worker_id));
  }
  void pre_map(Context& context) override {
    detail::KernelHelper<Kernel>::pre_map(context);
    copies_.forget_workers();
  }
  void pre_worker(Context&, int worker_id) override {
    detail::copy_into(copies_.of(worker_id), array_);
    copies_.mark(worker_id);
  }
  void pasha_prepare_results(Context& context) const {
    detail::KernelHelper<Kernel>::pasha_prepare_results(context);
    std::optional<std::vector<T>> combined;
    try {
      for (int w = 0; w < copies_.num_workers(); ++w) {
        if (!copies_.took_part(w)) continue;
        if (!combined) {
          combined = detail::copy_of(copies_.of(w));
        } else {
          detail::combine_into(*combined, copies_.of(w), combine_);
        }
      }
      if (combined) before_ = detail::copy_of(array_);
    } catch (...) {
      detail::KernelHelper<Kernel>::pasha_undo_results();
      throw;
    }
    if (combined) detail::copy_into(array_, *combined);
  }
  void pasha_commit_results() const noexcept {
    detail::KernelHelper<Kernel>::pasha_commit_results();
    before_.reset();
  }
  void pasha_undo_results() const noexcept {
    if (before_) detail::copy_into(array_, *before_);
    before_.reset();
    detail::KernelHelper<Kernel>::pasha_undo_results();
  }

 private:
  // Const, so that a moved-from helper keeps them (copies share them anyway).
  const Array<T> array_;
  const detail::PerWorkerArrays<T> copies_;
  mutable Combine combine_;
  mutable std::optional<std::vector<T>> before_;  // the array before this map combined into it
};

// A reduction into `result` (OpenMP's reduction clause): each worker's partial, of the result's
// shape, starts at `identity`; the kernel gets it as its last argument and folds its elements in:
// kernel(worker_id, index, values..., pasha::Array<T> partial), or (..., T& partial) for a scalar
// result. After the map, result = op(...op(op(result, partial_a), partial_b)..., partial_z) element by
// element, over the workers that got work, in worker order.
template <class T, class Op, class Kernel, bool kScalar>
class WithReduction final : public detail::KernelHelper<Kernel> {
  using Partial = std::conditional_t<kScalar, T&, Array<T>>;
  using Result = std::conditional_t<kScalar, T*, Array<T>>;

 public:
  WithReduction(Context& context, Result result, T identity, Op op, Kernel kernel)
      : detail::KernelHelper<Kernel>("pasha::with_reduction", &context, std::move(kernel)),
        result_(std::move(result)),
        partials_(context, result_shape(), result_order()),
        identity_(std::move(identity)),
        op_(std::move(op)) {}

  template <class... Values>
    requires std::invocable<Kernel&, int, std::size_t, Values..., Partial>
  void operator()(int worker_id, std::size_t index, Values&&... values) const {
    if constexpr (kScalar) {
      this->kernel_(worker_id, index, std::forward<Values>(values)..., *partials_.of(worker_id).data());
    } else {
      this->kernel_(worker_id, index, std::forward<Values>(values)..., partials_.of(worker_id));
    }
  }
  void pre_map(Context& context) override {
    detail::KernelHelper<Kernel>::pre_map(context);
    partials_.forget_workers();
  }
  void pre_worker(Context&, int worker_id) override {
    const Array<T>& partial = partials_.of(worker_id);
    std::fill(partial.begin(), partial.end(), identity_);
    partials_.mark(worker_id);
  }
  void pasha_prepare_results(Context& context) const {
    detail::KernelHelper<Kernel>::pasha_prepare_results(context);
    std::vector<T> value;
    try {
      value = current();
      before_ = value;
      for (int w = 0; w < partials_.num_workers(); ++w) {
        if (!partials_.took_part(w)) continue;
        if constexpr (kScalar) {
          value[0] = static_cast<T>(op_(value[0], *partials_.of(w).data()));
        } else {
          detail::combine_into(value, partials_.of(w), op_);
        }
      }
    } catch (...) {
      before_.reset();
      detail::KernelHelper<Kernel>::pasha_undo_results();
      throw;
    }
    set(value);
  }
  void pasha_commit_results() const noexcept {
    detail::KernelHelper<Kernel>::pasha_commit_results();
    before_.reset();
  }
  void pasha_undo_results() const noexcept {
    if (before_) set(*before_);
    before_.reset();
    detail::KernelHelper<Kernel>::pasha_undo_results();
  }

 private:
  // The result's elements now, and setting them (which cannot fail: T is trivially copyable).
  std::vector<T> current() const {
    if constexpr (kScalar) {
      return std::vector<T>{*result_};
    } else {
      return detail::copy_of(result_);
    }
  }
  void set(const std::vector<T>& value) const noexcept {
    if constexpr (kScalar) {
      *result_ = value[0];
    } else {
      detail::copy_into(result_, value);
    }
  }

  Shape result_shape() const {
    if constexpr (kScalar) {
      return Shape{};
    } else {
      return Shape(result_.shape());
    }
  }
  Order result_order() const {
    if constexpr (kScalar) {
      return Order::C;
    } else {
      return result_.order();
    }
  }

  // Const, so that a moved-from helper keeps them (copies share them anyway).
  const Result result_;
  const detail::PerWorkerArrays<T> partials_;
  T identity_;
  mutable Op op_;
  mutable std::optional<std::vector<T>> before_;  // the result before this map combined into it
};

template <class Init, class Kernel>
WithInit<std::decay_t<Init>, std::decay_t<Kernel>> with_init(Init&& init, Kernel&& kernel) {
  static_assert(std::invocable<std::decay_t<Init>&, int>, "pasha::with_init: init must be callable as init(int worker_id)");
  return {std::forward<Init>(init), std::forward<Kernel>(kernel)};
}

template <class Kernel, class Finalize>
WithFinalize<std::decay_t<Kernel>, std::decay_t<Finalize>> with_finalize(Kernel&& kernel, Finalize&& finalize) {
  static_assert(std::invocable<std::decay_t<Finalize>&, int>,
                "pasha::with_finalize: finalize must be callable as finalize(int worker_id)");
  return {std::forward<Kernel>(kernel), std::forward<Finalize>(finalize)};
}

template <class T, class Combine, class Kernel>
WithLocalCopies<T, std::decay_t<Combine>, std::decay_t<Kernel>> with_local_copies(Context& context, Array<T> array,
                                                                                 Combine&& combine, Kernel&& kernel) {
  static_assert(std::is_convertible_v<std::invoke_result_t<std::decay_t<Combine>&, T, T>, T>,
                "pasha::with_local_copies: combine(T, T) must give a T");
  return {context, std::move(array), std::forward<Combine>(combine), std::forward<Kernel>(kernel)};
}

template <class T, class Op, class Kernel>
WithReduction<T, std::decay_t<Op>, std::decay_t<Kernel>, false> with_reduction(Context& context, Array<T> result,
                                                                              std::type_identity_t<T> identity, Op&& op,
                                                                              Kernel&& kernel) {
  static_assert(std::is_convertible_v<std::invoke_result_t<std::decay_t<Op>&, T, T>, T>,
                "pasha::with_reduction: op(T, T) must give a T");
  return {context, std::move(result), std::move(identity), std::forward<Op>(op), std::forward<Kernel>(kernel)};
}

// A reduction into a scalar of the caller's (a local variable will do: the caller combines).
template <class T, class Op, class Kernel>
  requires std::is_trivially_copyable_v<T>
WithReduction<T, std::decay_t<Op>, std::decay_t<Kernel>, true> with_reduction(Context& context, T& result,
                                                                             std::type_identity_t<T> identity, Op&& op,
                                                                             Kernel&& kernel) {
  static_assert(std::is_convertible_v<std::invoke_result_t<std::decay_t<Op>&, T, T>, T>,
                "pasha::with_reduction: op(T, T) must give a T");
  return {context, &result, std::move(identity), std::forward<Op>(op), std::forward<Kernel>(kernel)};
}

}  // namespace pasha

#endif  // PASHA_CORE_HELPERS_H_
