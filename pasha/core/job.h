// The types of the backend contract (pasha/core/backend.h, which includes this header): the unit of
// work a context runs for one map, the state its workers share, and the layout of an array a context
// allocates. Context (pasha/core/context.h) names them in its interface.
#ifndef PASHA_CORE_JOB_H_
#define PASHA_CORE_JOB_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "pasha/core/array.h"
#include "pasha/core/functor.h"
#include "pasha/core/options.h"

namespace pasha {

class MapHook;

namespace backend {

// What a context learns of an array it allocates (Context::allocate_array).
struct ArrayLayout {
  Shape shape;      // the full shape, the worker axis included for per-worker arrays
  Strides strides;  // in elements
  std::size_t element_size = 0;
  Order order = Order::C;
  bool per_worker = false;  // the worker axis is first (C order) or last (F order)
  std::size_t bytes = 0;
};

// State shared by the workers of one map. A context places it where all its workers can reach it
// (any memory for threads; memory shared with the workers for worker processes) and resets it before
// each map (reset()). Only lock-free atomics, so it works between processes: construct it in place in
// the shared memory (placement new) before the workers start.
struct WorkerControl {
  // Set when a worker fails; the others stop at their next check, and kernels are not called again.
  std::atomic<bool> cancelled{false};
  // The next unclaimed position: of elements (Schedule::dynamic) or of shares (when a functor returns
  // more shares than there are workers).
  std::atomic<std::size_t> next_position{0};

  void reset() noexcept {
    cancelled.store(false, std::memory_order_relaxed);
    next_position.store(0, std::memory_order_relaxed);
  }
};
static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<std::size_t>::is_always_lock_free);

// One map, type-erased once: "worker w, run your part". The loop over elements is a template inside
// the job, so the kernel is inlined there; a context makes one virtual call per worker.
class Job {
 public:
  virtual ~Job() = default;

  // Workers 0 .. num_active_workers() - 1 take part in this map; the others have nothing to do. At
  // most the context's num_workers(); 0 for a map with nothing to visit.
  int num_active_workers() const noexcept { return num_active_workers_; }

  // How many elements the map visits, or kUnknownSize when the functor does not say. Contexts may use
  // it to decide whether per-map preparation is worth its cost.
  static constexpr std::size_t kUnknownSize = static_cast<std::size_t>(-1);
  std::size_t num_elements() const noexcept { return num_elements_; }

  // Runs worker `worker_id`'s part of the map. Returns early once `control.cancelled` is set; throws
  // what the kernel throws. Call it through backend::run_worker, never directly: that is what marks
  // the thread as a worker and calls the worker hooks.
  virtual void run(int worker_id, WorkerControl& control) = 0;

  // For contexts that run one map as several parts whose workers share no WorkerControl (the ranks of
  // an MPI context): a part is the active workers [first, first + count). Static shares stay each
  // worker's own; work handed out from WorkerControl::next_position (chunks of a dynamic schedule, or
  // shares beyond one per worker) is cut into parts in proportion to their workers, so that each part
  // takes only its own.
  //
  // indices_of_part: the element indices the part's workers visit, as one range, when the job can
  // tell (an indexed functor whose shares for the part are contiguous); nullopt otherwise.
  virtual std::optional<IndexRange> indices_of_part(int /*first*/, int /*count*/) const { return std::nullopt; }
  // restrict_to_part: from now on, workers of this job take handed-out work only from the part's
  // portion (counting WorkerControl::next_position from 0 within it). Call before any worker runs.
  virtual void restrict_to_part(int /*first*/, int /*count*/) {}

  // The caller's check (MapOptions::interrupt_check), if it gave one. A context calls check_caller
  // while it waits for its workers, at least every kCallerCheckInterval when checks_caller(); an
  // exception from it is the caller's own (Python's KeyboardInterrupt, say): the context stops its
  // workers as after a failure and lets the exception through once they have stopped.
  static constexpr std::chrono::milliseconds kCallerCheckInterval{100};
  bool checks_caller() const noexcept { return caller_check_ != nullptr; }
  void check_caller() const {
    if (caller_check_ != nullptr) (*caller_check_)();
  }
  // The check itself (null: none), and a way to put another in its place while a context runs the job:
  // for a context that adds to the caller's check (MpiContext: another rank's interruption), calling
  // the one it replaced from its own. `check` must outlive its use; put the old one back afterwards.
  const std::function<void()>* caller_check_function() const noexcept { return caller_check_; }
  void replace_caller_check(const std::function<void()>* check) noexcept { caller_check_ = check; }
  // The exception of the caller's check when it threw while the caller's own thread ran a share (a
  // serial context, worker 0 of a thread context): the job stopped its workers as after a failure and
  // the context returned normally; Context::map throws it. Null otherwise. A context that must tell
  // others of the map's end (the ranks of an MPI context) looks here once its workers are done.
  const std::exception_ptr& interruption() const noexcept { return interruption_; }

  // The arrays this map's kernels write, as the caller said (MapOptions::writes): a context that
  // copies results between address spaces copies only these when the caller said.
  const WrittenArrays& writes() const noexcept { return writes_ != nullptr ? *writes_ : kNotSaid; }

  // The hooks of this map alone (the helpers of pasha/core/helpers.h bring them), called after the
  // context's own hooks: pre_* in this order, post_* in reverse. Contexts need not look at them:
  // Context::map and backend::run_worker call them.
  std::span<MapHook* const> map_hooks() const noexcept { return {map_hooks_.data(), num_map_hooks_}; }

 protected:
  // For a job that stands in for another, given to backend::run_worker in its place (to watch it):
  // takes on its worker count, element count and map hooks. (A job that passes the other one to
  // run_worker itself, as MpiContext's does, must not take the hooks: they would run twice.)
  void stand_in_for(const Job& job) noexcept {
    num_active_workers_ = job.num_active_workers_;
    num_elements_ = job.num_elements_;
    map_hooks_ = job.map_hooks_;
    num_map_hooks_ = job.num_map_hooks_;
    caller_check_ = job.caller_check_;
    writes_ = job.writes_;
  }

  // For a job that runs part of another (MpiContext's rank part): checks the caller as that one does.
  void take_caller_check_from(const Job& job) noexcept { caller_check_ = job.caller_check_; }

  static constexpr std::size_t kMaxMapHooks = 64;
  int num_active_workers_ = 0;
  std::size_t num_elements_ = kUnknownSize;
  std::array<MapHook*, kMaxMapHooks> map_hooks_{};
  std::size_t num_map_hooks_ = 0;
  const std::function<void()>* caller_check_ = nullptr;  // null: none
  const WrittenArrays* writes_ = nullptr;                // null: not said
  std::exception_ptr interruption_;                      // see interruption()

 private:
  static inline const WrittenArrays kNotSaid{};
};

}  // namespace backend

}  // namespace pasha

#endif  // PASHA_CORE_JOB_H_
