// pasha::Context: where a map runs and where the arrays its kernels write into live.
//
// A context owns a fixed number of workers and knows how to reach them with memory: arrays from
// `alloc` are reachable by this context's workers and by the caller, and every write a worker makes
// to them is visible to the caller once `map` returns. pasha's contexts are SerialContext
// (contexts/serial/), ThreadContext (contexts/threads/), ProcessContext (contexts/processes/) and
// MpiContext (contexts/mpi/); a third party adds its own by implementing the protected interface
// described in pasha/core/backend.h, and checks it with the conformance suite (conformance/).
//
// Thread-safety: every public member may be called from any thread at any time. Maps on one context,
// hooks included, run one after the other: a map called while another runs waits its turn, unless it
// comes from inside the running map (a kernel, a thread of a worker process, or a thread that a
// kernel started: see map), where waiting would wait for itself.
//
// Fork: a context used in a process forked from the one that created it (a user's own fork())
// notices and starts afresh there: no map of the parent continues in the child, and state that
// belongs to one process (thread pools, control blocks) is rebuilt before the child's first map.
#ifndef PASHA_CORE_CONTEXT_H_
#define PASHA_CORE_CONTEXT_H_

#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "pasha/core/array.h"
#include "pasha/core/detail/map_job.h"
#include "pasha/core/detail/resolve_functor.h"
#include "pasha/core/errors.h"
#include "pasha/core/hooks.h"
#include "pasha/core/job.h"
#include "pasha/core/options.h"

namespace pasha {

// The most workers a context may have.
inline constexpr int kMaxWorkers = 4096;

class Context;

// The id of the worker running on this thread, or -1 outside any worker. Inside a kernel or a worker
// hook it is the id the kernel was given; in a worker process it is that worker's id in every thread
// (threads a kernel starts included), until the process ends. A map called from inside a kernel runs
// inline on that worker, and its kernel gets this id.
int this_worker_id() noexcept;

// Makes the calling thread count as worker `worker_id` while it lives (and this_worker_id() give it):
// a map it calls runs inline at once, as from that worker's kernel, and so do the threads it starts.
// Threads a kernel starts count as its worker without it; for a thread started before the kernel (a
// long-lived pool's) that a kernel waits for and that maps on the context running the kernel:
//   ctx.map([&](int w, std::size_t i, auto v) {
//     std::async(std::launch::async, [&, w] { pasha::WorkerScope as(w); ctx.map(inner, v); }).get();
//   }, input);
class WorkerScope {
 public:
  explicit WorkerScope(int worker_id) noexcept;
  ~WorkerScope();
  WorkerScope(const WorkerScope&) = delete;
  WorkerScope& operator=(const WorkerScope&) = delete;

 private:
  int previous_;
  detail::LentWorkerId lend_;  // threads it starts work as it does
};

namespace backend {
void run_worker(Context& context, Job& job, int worker_id, WorkerControl& control);
void launch(Context& context, Job& job);
std::shared_ptr<void> allocate(Context& context, const ArrayLayout& layout);
}  // namespace backend

class Context {
 public:
  // Memory from allocate() is aligned to this many bytes, and each worker's slice of a per-worker
  // array starts on such a boundary (two cache lines: workers never share one).
  static constexpr std::size_t kAlignment = 128;

  virtual ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int num_workers() const noexcept { return num_workers_; }
  // A number no other context of this process has had (nor a context of the process it was forked
  // from made after it): an identity that outlives the context, unlike its address.
  std::uint64_t id() const noexcept { return id_; }
  // "serial", "threads", "processes", "mpi", or a third-party context's name.
  virtual std::string name() const = 0;

  // A new array of `shape`, reachable by this context's workers. Without `.fill` the contents are
  // unspecified. `.per_worker = true` adds a worker axis of length num_workers() (first for C order,
  // last for F order) and starts each worker's slice on its own kAlignment boundary, so workers
  // updating their own slice never share a cache line: a(w, ...) indexes worker w's slice, and the
  // array is contiguous within each slice but (unless the slices fill whole lines) not as a whole.
  // Throws std::invalid_argument when the byte size or a stride overflows, std::bad_alloc (or a
  // subclass naming the size) when the memory cannot be had.
  template <class T>
  Array<T> alloc(const Shape& shape, const AllocOptions<T>& options = {}) {
    static_assert(std::is_trivially_copyable_v<T>, "pasha::alloc<T>: T must be trivially copyable");
    static_assert(alignof(T) <= kAlignment, "pasha::alloc<T>: T is over-aligned");
    RawArray raw = alloc_raw(shape, sizeof(T), options.order, options.per_worker);
    T* data = static_cast<T*>(raw.data);
    // A fill of zeros on memory that reads as zeros is not written (its pages stay untouched).
    if (options.fill && !(raw.reads_as_zeros && detail::all_bytes_zero(&*options.fill, sizeof(T)))) {
      std::fill(data, data + raw.bytes / sizeof(T), *options.fill);
    }
    Array<T> array(std::move(raw.memory), data, raw.shape, raw.strides, options.order);
    if (options.axes.empty()) return array;
    return array.named(detail::allocated_axis_names(options.axes, shape.ndim(), options.per_worker, options.order));
  }

  // The memory of an array whose element type is known only at run time (a binding's: a numpy dtype),
  // laid out as alloc<T> lays out an array of `element_size`-byte elements; contents unspecified.
  // `pad_worker_slices = false` lays a per-worker array out contiguously, without starting each
  // worker's slice on its own kAlignment boundary (numpy users expect contiguous arrays). Throws as
  // alloc does. For bindings; C++ code uses alloc<T>.
  struct RawArray {
    std::shared_ptr<void> memory;  // owns the memory
    void* data = nullptr;
    Shape shape;      // with the worker axis of a per-worker array
    Strides strides;  // in elements
    std::size_t bytes = 0;
    bool reads_as_zeros = false;  // fresh memory, every byte zero until written (allocates_zeros)
  };
  RawArray alloc_raw(const Shape& shape, std::size_t element_size, Order order, bool per_worker,
                     bool pad_worker_slices = true);

  // A new array like `prototype` (numpy's `like=`): a pasha::Array, or a contiguous range such as a
  // std::vector, std::span or std::array (1-d). Same shape, order, axis names and element type
  // unless the options (or U) say otherwise; the prototype's contents are not copied.
  template <class U = void, class Prototype>
    requires(!std::is_pointer_v<Prototype>)
  auto alloc_like(const Prototype& prototype,
                  const AllocLikeOptions<detail::alloc_like_t<U, detail::like_element_t<Prototype>>>& options = {}) {
    static_assert(detail::ArrayLike<Prototype>::value,
                  "pasha::alloc_like: the prototype must be a pasha::Array, a contiguous range of trivially copyable "
                  "elements (std::vector, std::span, std::array), or a pointer and a shape: alloc_like(data, shape)");
    using Like = detail::ArrayLike<Prototype>;
    using T = detail::alloc_like_t<U, typename Like::element_type>;
    const Shape shape = options.shape.has_value() ? *options.shape : Like::shape(prototype);
    AxisNames axes = options.axes;
    if (axes.empty()) axes = detail::inherited_axis_names(Like::axes(prototype), shape.ndim(), options.per_worker);
    return alloc<T>(shape, {.order = options.order.value_or(Like::order(prototype)), .fill = options.fill,
                            .per_worker = options.per_worker, .axes = std::move(axes)});
  }

  // A pointer alone says nothing of a shape.
  template <class U = void, class T>
  void alloc_like(const T* /*prototype*/) {
    static_assert(sizeof(T) == 0, "pasha::alloc_like: a pointer needs a shape: alloc_like(data, shape)");
  }

  // A new array like the `shape`d array at `prototype` (a pointer and a shape, C order unless the
  // options say otherwise).
  template <class U = void, class T>
  Array<detail::alloc_like_t<U, T>> alloc_like(const T* /*prototype*/, const Shape& shape,
                                               const AllocLikeOptions<detail::alloc_like_t<U, T>>& options = {}) {
    return alloc<detail::alloc_like_t<U, T>>(
        options.shape.has_value() ? *options.shape : shape,
        {.order = options.order.value_or(Order::C), .fill = options.fill, .per_worker = options.per_worker,
         .axes = options.axes});
  }

  // Calls kernel(worker_id, index, values...) for every element of `source`, spread over the workers,
  // and returns when all are done. `source` is a functor, has an ADL pasha_functor(), or has a
  // pasha::FunctorAdapter (pasha/core/functor.h): with pasha/pasha.h, any sized random-access range
  // and any pasha::Array.
  //
  // If a worker fails, the others are stopped early and map throws pasha::WorkerError for the lowest
  // failed worker id; the context stays usable.
  //
  // Called from inside a map, map runs inline on the calling thread, serially, without the context's
  // hooks, and its kernel gets a worker id: from a kernel or worker hook (of any context), or a thread
  // in a WorkerScope, that worker's; from any thread of a worker process, that process's worker's; from
  // a thread that a kernel (or a worker hook) started, directly or through threads it started in turn
  // (std::thread, std::async, OpenMP, a library's pool, Python's threading), the worker id of the kernel
  // that started it, for as long as that thread runs a worker's share; from a thread started by a
  // pre_map or post_map hook while it runs, worker 0's. Any other thread's map waits its turn: maps of
  // one context run one after the other, and no two kernels of one context ever run with one worker id
  // unless a kernel shares its own with threads it started. Which map waits, and which runs inline,
  // never depends on timing. An exception from an inline map's kernel propagates unchanged.
  template <class Kernel, class Source>
  void map(Kernel&& kernel, Source&& source, const MapOptions& options = {}) {
    auto&& functor = detail::as_functor(std::forward<Source>(source));
    using F = std::remove_reference_t<decltype(functor)>;
    if (const int worker_id = this_worker_id(); worker_id >= 0) {
      detail::run_nested(functor, kernel, worker_id, *this);
      return;
    }
    MapTurn turn;
    take_turn(turn);
    detail::MapJob<F, std::remove_reference_t<Kernel>> job(functor, kernel, num_workers_, options);
    run_job(job, options);
  }

  // Adds a hook called around every later map of this context (pasha/core/hooks.h). Waits for a map
  // in progress to end. Throws std::logic_error from inside a map of this context (a hook or a
  // kernel), where the hooks are in use.
  void add_hook(std::shared_ptr<MapHook> hook);

  // How many processes call this context's map together, each with its own caller (the ranks of an
  // MpiContext); 1 for contexts driven by one caller.
  virtual int num_callers() const noexcept { return 1; }

  // What a progress report (MapOptions::progress) covers in this process: the share of a map's
  // elements that the workers counting into this process's counter visit (the counter lives in
  // allocate() memory, so it counts what the workers reaching that memory do), and whether this
  // process prints the report. The default: all of them, printed here. A context whose maps span
  // processes that share no memory (MPI ranks across nodes) overrides it.
  struct ProgressScope {
    double share_of_elements = 1.0;
    bool report_here = true;
  };
  virtual ProgressScope progress_scope() const { return {}; }

 protected:
  // Throws std::invalid_argument unless 1 <= num_workers <= kMaxWorkers.
  explicit Context(int num_workers);

  // The backend contract (pasha/core/backend.h).
  virtual std::shared_ptr<void> allocate(std::size_t bytes) = 0;
  virtual void launch(backend::Job& job) = 0;
  // The memory of an array of `layout`: allocate(layout.bytes) unless a context needs the layout too.
  virtual std::shared_ptr<void> allocate_array(const backend::ArrayLayout& layout) { return allocate(layout.bytes); }
  // Whether the memory allocate_array(layout) gives for layout.bytes reads as zeros (a fresh mapping),
  // on every call (from inside kernels and in forked workers too): alloc then writes no fill of zeros.
  // The default, false, is always safe.
  virtual bool allocates_zeros(std::size_t /*bytes*/) const { return false; }

  // Called in a process forked from the one that made this context, before the child's first map
  // of it, with no map of it running: rebuild what belongs to one process (threads, control blocks,
  // descriptors). What was inherited must not be released or waited for (its threads do not exist
  // here, and its locks may be held forever); let it go. Arrays made before the fork stay shared
  // between both processes. The default does nothing.
  virtual void rebuild_after_fork() {}

  // Runs `f` under the lock that maps hold, so that it has the context's workers to itself; for an
  // allocate that uses them. Not from inside a kernel of this context (that would wait for itself).
  template <class F>
  decltype(auto) exclusively(F&& f) {
    adopt_if_forked();
    std::lock_guard lock(map_mutex_);
    return std::forward<F>(f)();
  }
  // The same, if the lock is free now: returns false, without running `f`, when a map holds it.
  template <class F>
  bool try_exclusively(F&& f) {
    adopt_if_forked();
    std::unique_lock lock(map_mutex_, std::try_to_lock);
    if (!lock.owns_lock()) return false;
    std::forward<F>(f)();
    return true;
  }

 private:
  friend void backend::run_worker(Context& context, backend::Job& job, int worker_id,
                                  backend::WorkerControl& control);
  friend void backend::launch(Context& context, backend::Job& job);
  friend std::shared_ptr<void> backend::allocate(Context& context, const backend::ArrayLayout& layout);

  // A map's turn: the map lock, held until the turn ends.
  // Turns are taken in the order asked for (a ticket each), so that a thread mapping in a loop cannot
  // keep another from its turn; a map from a hook of the map holding the lock (the same thread) takes
  // it again at once.
  struct MapTurn {
    MapTurn() = default;
    MapTurn(const MapTurn&) = delete;
    MapTurn& operator=(const MapTurn&) = delete;
    ~MapTurn();
    std::unique_lock<std::recursive_timed_mutex> lock;
    std::atomic<std::uint64_t>* served = nullptr;  // the counter to move on when the turn ends
  };
  // Waits for this thread's turn, then for the map lock.
  void take_turn(MapTurn& turn);

  // Marks the calling thread as the one holding the map lock, while it lives (MapHolder).
  class MapHolder {
   public:
    explicit MapHolder(Context& context);
    ~MapHolder();
    MapHolder(const MapHolder&) = delete;
    MapHolder& operator=(const MapHolder&) = delete;

   private:
    Context& context_;
    std::uint64_t token_;  // what the mark was before: restored after
  };

  void run_job(detail::MapJobBase& job, const MapOptions& options);
  // launch(job), with a progress report (MapOptions::progress).
  void run_with_progress(detail::MapJobBase& job, const MapOptions& options);
  // Resets what belongs to another process when this process is a fork of the one that made it.
  void adopt_if_forked();

  int num_workers_;
  std::uint64_t id_;
  std::vector<std::shared_ptr<MapHook>> hooks_;
  std::recursive_timed_mutex map_mutex_;  // one map at a time, hooks included (a hook may map)
  std::atomic<pid_t> owner_pid_;          // the process map_mutex_ and the context's state belong to
  std::atomic<pid_t> adopting_pid_{0};    // the process whose thread is adopting the context, or 0
  // The thread holding map_mutex_ (0 when none), for add_hook's check and a hook's own map.
  std::atomic<std::uint64_t> map_holder_{0};
  // Turn tickets: the next to hand out, and the one whose turn it is.
  std::atomic<std::uint64_t> next_ticket_{0};
  std::atomic<std::uint64_t> now_serving_{0};
};

// Checks a worker count for a context constructor; returns it or throws std::invalid_argument.
int checked_num_workers(long long num_workers);

}  // namespace pasha

#endif  // PASHA_CORE_CONTEXT_H_
