// The machinery of pasha/core/helpers.h: what every helper shares (KernelHelper: the wrapped kernel,
// its hooks, the one-map-at-a-time check), per-worker storage for helpers that combine, and
// element-wise copies and combines. Internal to pasha.
#ifndef PASHA_CORE_DETAIL_KERNEL_HELPER_H_
#define PASHA_CORE_DETAIL_KERNEL_HELPER_H_

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "pasha/core/array.h"
#include "pasha/core/context.h"
#include "pasha/core/hooks.h"

namespace pasha {
namespace detail {

// What every helper shares: the wrapped kernel, the hooks of the kernels inside it, the check that it
// is used by its own context and by one map at a time.
template <class Kernel>
class KernelHelper : public MapHook {
 public:
  static constexpr bool pasha_kernel_is_generic = kIsGenericKernel<Kernel>;

  // Const, so that a helper stored in a const variable still brings its hooks: what a map changes
  // in it is mutable. This helper's hook comes before those of the kernels it wraps (outer scopes
  // first).
  void pasha_add_map_hooks(MapHookList& hooks) const {
    hooks.add(const_cast<KernelHelper*>(this));
    if constexpr (KernelWithMapHooks<Kernel>) kernel_.pasha_add_map_hooks(hooks);
  }
  // The wrapped kernel's results (helpers inside this one), which come first: an outer helper
  // combining into the same array sees what the inner one combined.
  void pasha_prepare_results(Context& context) const {
    if constexpr (KernelWithMapHooks<Kernel>) kernel_.pasha_prepare_results(context);
  }
  void pasha_commit_results() const noexcept {
    if constexpr (KernelWithMapHooks<Kernel>) kernel_.pasha_commit_results();
  }
  void pasha_undo_results() const noexcept {
    if constexpr (KernelWithMapHooks<Kernel> && requires { kernel_.pasha_undo_results(); }) {
      kernel_.pasha_undo_results();
    }
  }

  void pre_map(Context& context) override {
    // The helper may outlive its context: only the context's id and description are looked at.
    if (context_id_ != 0 && context.id() != context_id_) {
      throw std::invalid_argument(std::string(name_) + ": made for another context object (" + context_description_ +
                                  ") than the one this map runs on (" + describe(context) +
                                  "); make it with that one");
    }
    if (context_id_ != 0 && context.num_callers() > 1) {
      throw std::invalid_argument(std::string(name_) + ": not available with a context driven by " +
                                  std::to_string(context.num_callers()) + " callers (" + context.name() +
                                  "): each would combine the same partials");
    }
    take_map();
  }
  void post_map(Context&) override { std::atomic_ref<int>(in_map()).store(0); }

 protected:
  // A helper with arrays of `context` keeps its in-a-map flag in that context's memory, where the
  // worker processes of a map nested in a kernel see it too; copies share it, as they share the
  // arrays.
  KernelHelper(const char* name, Context* context, Kernel kernel)
      : name_(name),
        context_id_(context != nullptr ? context->id() : 0),
        context_description_(context != nullptr ? describe(*context) : std::string()),
        kernel_(std::move(kernel)),
        shared_in_map_(context != nullptr ? context->alloc<int>({}, {.fill = 0}) : Array<int>()) {}
  // A moved-from helper keeps its state (copies share it): only the kernel moves.
  KernelHelper(const KernelHelper& other) = default;
  KernelHelper(KernelHelper&& other) noexcept(std::is_nothrow_move_constructible_v<Kernel>)
      : MapHook(other),
        name_(other.name_),
        context_id_(other.context_id_),
        context_description_(other.context_description_),
        kernel_(std::move(other.kernel_)),
        shared_in_map_(other.shared_in_map_) {}
  KernelHelper& operator=(const KernelHelper&) = delete;

  static std::string describe(const Context& context) {
    return "a " + context.name() + " context of " + std::to_string(context.num_workers()) + " workers";
  }

  const char* name_;
  std::uint64_t context_id_;  // Context::id of the context whose arrays the helper uses; 0 when none
  std::string context_description_;

  mutable Kernel kernel_;

 private:
  // The process id of the map's caller between pre_map and post_map, 0 outside. Helpers without
  // arrays (with_init, with_finalize) share nothing between maps, and keep it in the object (a copy
  // starts outside any map).
  int& in_map() const noexcept { return shared_in_map_.data() != nullptr ? *shared_in_map_.data() : local_in_map_; }

  // Marks the helper as in a map of this process, or throws std::logic_error when a map of a live
  // process has it. A worker process killed in a nested map (pasha kills a worker that does not
  // stop after a sibling's failure) never ran post_map: its mark is taken over.
  void take_map() const {
    std::atomic_ref<int> holder(in_map());
    const int self = static_cast<int>(::getpid());
    int seen = 0;
    while (!holder.compare_exchange_strong(seen, self)) {
      const bool holder_gone = seen != self && ::kill(seen, 0) != 0 && errno == ESRCH;
      if (!holder_gone) {
        throw std::logic_error(std::string(name_) + ": already in a map; make one helper per map that runs at once");
      }
    }
  }

  Array<int> shared_in_map_;
  alignas(std::atomic_ref<int>::required_alignment) mutable int local_in_map_ = 0;
};

// Per-worker storage of `shape` for a helper, with one view per worker made up front (so that a
// kernel call costs no reference count), and which workers got work in the current map.
template <class T>
class PerWorkerArrays {
 public:
  PerWorkerArrays(Context& context, const Shape& shape, Order order)
      : storage_(context.alloc<T>(shape, {.order = order, .per_worker = true})),
        took_part_(context.alloc<int>({}, {.fill = 0, .per_worker = true})) {
    const std::size_t worker_axis = order == Order::C ? 0 : storage_.ndim() - 1;
    for (int w = 0; w < context.num_workers(); ++w) {
      views_.push_back(storage_.slice(worker_axis, static_cast<std::size_t>(w)).unowned());
    }
  }

  // A worker's slot. A map nested in a kernel of another context passes the outer worker's id, which
  // may exceed this context's count: it takes slot id % count, which is free, because a helper serves
  // one map at a time and a nested map runs on its calling worker alone.
  const Array<T>& of(int worker_id) const noexcept { return views_[slot(worker_id)]; }
  void forget_workers() const {
    for (std::size_t w = 0; w < views_.size(); ++w) took_part_[w] = 0;
  }
  void mark(int worker_id) const { took_part_[slot(worker_id)] = 1; }
  bool took_part(int worker_id) const { return took_part_[static_cast<std::size_t>(worker_id)] != 0; }
  int num_workers() const noexcept { return static_cast<int>(views_.size()); }

 private:
  // Called for every element: no division unless the id is out of range.
  std::size_t slot(int worker_id) const noexcept {
    const auto id = static_cast<std::size_t>(worker_id);
    return id < views_.size() ? id : id % views_.size();
  }

  Array<T> storage_;
  Array<int> took_part_;
  std::vector<Array<T>> views_;
};

// Element-wise over memory order, between Arrays of one shape and order and std::vectors of their
// elements: into[e] = op(into[e], from[e]), and into[e] = from[e].
template <class Into, class From, class Op>
void combine_into(Into&& into, const From& from, Op& op) {
  using T = std::remove_cvref_t<decltype(into[0])>;
  const std::size_t n = from.size();
  for (std::size_t e = 0; e < n; ++e) into[e] = static_cast<T>(op(into[e], from[e]));
}

template <class Into, class From>
void copy_into(Into&& into, const From& from) noexcept {
  const std::size_t n = from.size();
  for (std::size_t e = 0; e < n; ++e) into[e] = from[e];
}

// The elements of `array` in memory order, in a new vector.
template <class T>
std::vector<T> copy_of(const Array<T>& array) {
  std::vector<T> copy(array.size());
  copy_into(copy, array);
  return copy;
}

}  // namespace detail

}  // namespace pasha

#endif  // PASHA_CORE_DETAIL_KERNEL_HELPER_H_
