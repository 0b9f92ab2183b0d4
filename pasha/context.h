// pasha::Context: where a map runs and where the arrays its kernels write into live.
//
// A context owns a fixed number of workers and knows how to reach them with memory: arrays from
// `alloc` are reachable by this context's workers and by the caller, and every write a worker makes
// to them is visible to the caller once `map` returns. Concrete contexts: SerialContext,
// ThreadContext, ProcessContext (contexts/). Third parties may add their own by implementing the
// protected interface; conformance/ checks them.
//
// Thread-safety: `map` and `alloc` may be called from several threads at once (maps on one context,
// hooks included, then run one after the other). `add_hook` must not race with `map`.
#ifndef PASHA_CONTEXT_H_
#define PASHA_CONTEXT_H_

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "pasha/array.h"
#include "pasha/detail/job.h"
#include "pasha/detail/map_job.h"
#include "pasha/detail/resolve_functor.h"
#include "pasha/errors.h"
#include "pasha/hooks.h"
#include "pasha/options.h"

namespace pasha {

// The most workers a context may have.
inline constexpr int kMaxWorkers = 4096;

namespace detail {
template <class U, class T>
using alloc_like_t = std::conditional_t<std::is_void_v<U>, T, U>;
}  // namespace detail

class Context {
 public:
  virtual ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int num_workers() const noexcept { return num_workers_; }
  // "serial", "threads", "processes", or a third-party context's name.
  virtual std::string name() const = 0;

  // A new array of `shape` (one or several extents), reachable by this context's workers.
  // Throws std::invalid_argument when the byte size overflows, std::bad_alloc (or a subclass naming
  // the size) when the memory cannot be had.
  template <class T>
  Array<T> alloc(const Shape& shape, const AllocOptions<T>& options = {}) {
    static_assert(std::is_trivially_copyable_v<T>, "pasha::alloc<T>: T must be trivially copyable");
    static_assert(alignof(T) <= kAlignment, "pasha::alloc<T>: T is over-aligned");
    Shape full = shape;
    if (options.per_worker) {
      full.insert(options.order == Order::C ? 0 : full.ndim(), static_cast<std::size_t>(num_workers_));
    }
    const std::size_t bytes = detail::checked_byte_size(full, sizeof(T));
    std::shared_ptr<void> memory = allocate(bytes);
    Array<T> array(memory, static_cast<T*>(memory.get()), full, options.order);
    if (options.fill) std::fill(array.data(), array.data() + array.size(), *options.fill);
    return array;
  }

  // A new array like `prototype`: same shape, order and element type unless the options (or U)
  // say otherwise. The prototype's contents are not copied.
  template <class U = void, class T>
  Array<detail::alloc_like_t<U, T>> alloc_like(const Array<T>& prototype,
                                               const AllocLikeOptions<detail::alloc_like_t<U, T>>& options = {}) {
    const Order prototype_order = prototype.f_contiguous() && !prototype.c_contiguous() ? Order::F : prototype.order();
    return alloc<detail::alloc_like_t<U, T>>(
        options.shape.has_value() ? *options.shape : Shape(prototype.shape()),
        {.order = options.order.value_or(prototype_order), .fill = options.fill, .per_worker = options.per_worker});
  }

  // Calls kernel(worker_id, index, values...) for every element of `source`, spread over the workers,
  // and returns when all are done. `source` is a functor, has an ADL pasha_functor(), is a pasha::Array
  // or a sized random-access range (pasha/functor.h).
  //
  // If a worker fails, the others are stopped early and map throws pasha::WorkerError for the lowest
  // failed worker id; the context stays usable. Called from inside a kernel, map runs inline on the
  // calling worker, serially, without hooks.
  template <class Kernel, class Source>
  void map(Kernel&& kernel, Source&& source, const MapOptions& options = {}) {
    auto&& functor = detail::as_functor(std::forward<Source>(source));
    using F = std::remove_reference_t<decltype(functor)>;
    if (detail::in_worker()) {
      detail::run_nested(functor, kernel);
      return;
    }
    detail::MapJob<F, std::remove_reference_t<Kernel>> job(functor, kernel, num_workers_, options);
    run_job(job);
  }

  // Adds a hook called around every later map of this context (pasha/hooks.h).
  void add_hook(std::shared_ptr<MapHook> hook);

  // Worker-facing hook calls, for contexts' workers (through detail::run_worker).
  void call_pre_worker_hooks(int worker_id);
  void call_post_worker_hooks(int worker_id);

 protected:
  // Memory returned by allocate() is aligned to this many bytes.
  static constexpr std::size_t kAlignment = 64;

  // Throws std::invalid_argument unless 1 <= num_workers <= kMaxWorkers.
  explicit Context(int num_workers);

  // `bytes` of memory reachable by every worker of this context, aligned to kAlignment, released when
  // the last copy of the returned pointer goes. Contents unspecified.
  virtual std::shared_ptr<void> allocate(std::size_t bytes) = 0;

  // Runs workers 0 .. job.num_active_workers() - 1, each through detail::run_worker, and waits for
  // all. On failure throws WorkerError for the lowest failed worker id, after all workers stopped.
  virtual void launch(detail::Job& job) = 0;

 private:
  void run_job(detail::Job& job);

  int num_workers_;
  std::vector<std::shared_ptr<MapHook>> hooks_;
  std::recursive_mutex map_mutex_;  // one map at a time, hooks included (a hook may map)
};

// Checks a worker count for a context constructor; returns it or throws std::invalid_argument.
int checked_num_workers(int num_workers);

}  // namespace pasha

#endif  // PASHA_CONTEXT_H_
