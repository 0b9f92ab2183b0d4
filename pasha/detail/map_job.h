// MapJob: the Job for one map of a kernel over a functor. Internal to pasha.
#ifndef PASHA_DETAIL_MAP_JOB_H_
#define PASHA_DETAIL_MAP_JOB_H_

#include <algorithm>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <ranges>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "pasha/detail/job.h"
#include "pasha/functor.h"
#include "pasha/options.h"

namespace pasha::detail {

// Thrown inside a non-indexed functor's iterate to stop a cancelled worker; never leaves the worker.
struct Cancelled {};

// Elements a worker runs between two looks at the cancel flag (static schedule, indexed functors).
inline constexpr std::size_t kCancelCheckInterval = 1 << 14;

// The visitor a functor calls: visit(index, values...) -> kernel(worker_id, index, values...).
// Constrained, so that functors can ask which values the kernel accepts.
template <class Kernel>
struct KernelVisitor {
  Kernel& kernel;
  int worker_id;

  template <class... Values>
    requires std::invocable<Kernel&, int, std::size_t, Values...>
  void operator()(std::size_t index, Values&&... values) const {
    kernel(worker_id, index, std::forward<Values>(values)...);
  }
};

// A KernelVisitor that stops the worker once the map is cancelled; for functors whose shares pasha
// cannot cut into chunks.
template <class Kernel>
struct CancellableKernelVisitor {
  KernelVisitor<Kernel> visit;
  const std::atomic<bool>& cancelled;

  template <class... Values>
    requires std::invocable<Kernel&, int, std::size_t, Values...>
  void operator()(std::size_t index, Values&&... values) const {
    if (cancelled.load(std::memory_order_relaxed)) throw Cancelled{};
    visit(index, std::forward<Values>(values)...);
  }
};

template <class F, class Kernel>
class MapJob final : public Job {
 public:
  MapJob(F& functor, Kernel& kernel, int num_workers, const MapOptions& options)
      : functor_(functor), kernel_(kernel), options_(options) {
    if constexpr (IndexedFunctor<F>) num_elements_ = functor.size();
    if (options.schedule == Schedule::dynamic) {
      if constexpr (IndexedFunctor<F>) {
        size_ = functor.size();
        if (options_.chunk == 0) {
          options_.chunk = std::max<std::size_t>(1, size_ / (16 * static_cast<std::size_t>(num_workers)));
        }
        const std::size_t chunks = (size_ + options_.chunk - 1) / options_.chunk;
        num_active_workers_ = static_cast<int>(std::min<std::size_t>(chunks, static_cast<std::size_t>(num_workers)));
        return;
      } else {
        throw std::invalid_argument(std::string("pasha::map: Schedule::dynamic needs an indexed functor (shares of "
                                                "pasha::IndexRange and a size()); ") +
                                    typeid(F).name() + " is not one");
      }
    }
    for (auto&& share : functor.split(num_workers)) shares_.push_back(std::forward<decltype(share)>(share));
    if (shares_.size() > static_cast<std::size_t>(num_workers)) {
      throw std::invalid_argument("pasha::map: the functor's split(" + std::to_string(num_workers) + ") returned " +
                                  std::to_string(shares_.size()) + " shares; at most one per worker is allowed");
    }
    num_active_workers_ = static_cast<int>(shares_.size());
  }

  void run(int worker_id, WorkerControl& control) override {
    const KernelVisitor<Kernel> visit{kernel_, worker_id};
    if constexpr (IndexedFunctor<F>) {
      if (options_.schedule == Schedule::dynamic) {
        for (;;) {
          if (control.cancelled.load(std::memory_order_relaxed)) return;
          const std::size_t begin = control.next_position.fetch_add(options_.chunk, std::memory_order_relaxed);
          if (begin >= size_) return;
          functor_.iterate(IndexRange{begin, std::min(size_, begin + options_.chunk)}, visit);
        }
      }
      const IndexRange share = shares_[static_cast<std::size_t>(worker_id)];
      // Every worker runs its first chunk, so that a failure early in each share is reported for the
      // lowest worker id whatever the timing; the cancel flag is checked between chunks.
      for (std::size_t begin = share.begin; begin < share.end; begin += kCancelCheckInterval) {
        if (begin != share.begin && control.cancelled.load(std::memory_order_relaxed)) return;
        functor_.iterate(IndexRange{begin, std::min(share.end, begin + kCancelCheckInterval)}, visit);
      }
    } else {
      try {
        functor_.iterate(shares_[static_cast<std::size_t>(worker_id)],
                         CancellableKernelVisitor<Kernel>{visit, control.cancelled});
      } catch (const Cancelled&) {
      }
    }
  }

 private:
  F& functor_;
  Kernel& kernel_;
  MapOptions options_;
  std::vector<share_t<F>> shares_;
  std::size_t size_ = 0;
};

// Runs a map started from inside a kernel: inline, on the calling worker, as a serial context would
// (one share, worker id 0), without hooks.
template <class F, class Kernel>
void run_nested(F& functor, Kernel& kernel) {
  const KernelVisitor<Kernel> visit{kernel, 0};
  for (auto&& share : functor.split(1)) functor.iterate(share, visit);
}

}  // namespace pasha::detail

#endif  // PASHA_DETAIL_MAP_JOB_H_
