// MapJob: the backend::Job of one map of a kernel over a functor. Internal to pasha.
//
// Scheduling (MapOptions, pasha/core/functor.h): static shares (worker w runs share w), shares handed out
// to free workers when the functor returns more shares than workers, or dynamic chunks of an indexed
// functor claimed from WorkerControl::next_position.
//
// Cancellation: an indexed share is walked in chunks of about 1/64 of the share (at least 1, at most
// 16384 elements) and the cancel flag is looked at between chunks, so that workers whose elements are
// expensive (a file, a train) stop within a few elements and cheap loops keep their vectorised inner
// loop. A functor that lets exceptions pass runs the first chunk of each share before looking, so
// that when every worker fails at once the reported worker (the lowest id) does not depend on timing;
// the visitor of any other functor (indexed or not) looks before each element, so a worker cancelled
// before its first element reports nothing. A non-indexed functor is stopped by its visitor, which
// returns false and calls no kernel once the map is cancelled.
//
// Exceptions: a kernel's exception unwinds through the iterate of functors that let exceptions pass
// (pasha's own adapters); for any other functor the visitor keeps it and iterate sees visit return
// false, and it is rethrown once iterate has returned.
#ifndef PASHA_CORE_DETAIL_MAP_JOB_H_
#define PASHA_CORE_DETAIL_MAP_JOB_H_

#include <cxxabi.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "pasha/core/detail/kernel_visitor.h"
#include "pasha/core/detail/worker_identity.h"
#include "pasha/core/errors.h"
#include "pasha/core/functor.h"
#include "pasha/core/hooks.h"
#include "pasha/core/job.h"
#include "pasha/core/options.h"

namespace pasha {
class Context;
class MapHook;
}  // namespace pasha

namespace pasha::detail {

// A kernel with hooks of its own (pasha/core/hooks.h, MapHookList).
template <class K>
concept KernelWithMapHooks = requires(K& kernel, MapHookList& list, Context& context) {
  kernel.pasha_add_map_hooks(list);
  kernel.pasha_prepare_results(context);
  { kernel.pasha_commit_results() } noexcept;
};

// Prepares, then commits, the results of a kernel with hooks; nothing for other kernels.
template <class Kernel>
void combine_results(Kernel& kernel, Context& context) {
  if constexpr (KernelWithMapHooks<Kernel>) {
    kernel.pasha_prepare_results(context);
    kernel.pasha_commit_results();
  }
}

// The hooks of one map in the order they run: the context's, then the map's own (a helper's).
class MapHookSequence {
 public:
  MapHookSequence(const std::vector<std::shared_ptr<MapHook>>& context_hooks, const backend::Job& job) noexcept
      : context_hooks_(context_hooks), map_hooks_(job.map_hooks()) {}
  std::size_t size() const noexcept { return context_hooks_.size() + map_hooks_.size(); }
  MapHook& operator[](std::size_t i) const noexcept {
    return i < context_hooks_.size() ? *context_hooks_[i] : *map_hooks_[i - context_hooks_.size()];
  }

 private:
  const std::vector<std::shared_ptr<MapHook>>& context_hooks_;
  std::span<MapHook* const> map_hooks_;
};

// The part of a MapJob that does not depend on its types.
class MapJobBase : public backend::Job {
 public:
  // The caller's own share (serial contexts, worker 0 of a thread context) cannot wait for the
  // context to check the caller (MapOptions::interrupt_check): the job checks between its chunks
  // when it runs on the caller's thread (`caller_thread`, a this_thread_token), stops the map if the
  // check throws, and rethrow_interruption throws that once the context has returned.
  void set_caller_thread(std::uint64_t caller_thread, pid_t caller_process) noexcept {
    caller_thread_ = caller_thread;
    caller_process_ = caller_process;
  }
  void rethrow_interruption() const {
    if (interruption()) std::rethrow_exception(interruption());
  }

  // Where workers count the elements they have finished, when the map reports progress: memory every
  // worker and the caller can reach. Null (the default) counts nothing.
  void count_progress_in(std::atomic<std::size_t>* counter) noexcept { progress_ = counter; }

 protected:
  // Between two chunks of a share: the caller's check, on the caller's thread (see above), at most
  // every kBetweenChunksCheckInterval (chunks of a native kernel take microseconds, the check may
  // take a lock: Python's GIL), and once more, not spaced out, when the caller's share is over
  // (before its post_worker hooks run), so that an interruption during its last chunks stops the map.
  static constexpr std::chrono::milliseconds kBetweenChunksCheckInterval{1};
  void check_caller_between_chunks(backend::WorkerControl& control, bool spaced = true) {
    // (A worker process forked from the caller's thread has the same token: the process tells. Only
    // the caller's thread reads or writes interruption_ and last_check_between_chunks_.)
    if (!checks_caller() || this_thread_token() != caller_thread_ || this_process_id() != caller_process_ || interruption_) {
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (spaced && now - last_check_between_chunks_ < kBetweenChunksCheckInterval) return;
    last_check_between_chunks_ = now;
    try {
      check_caller();
    } catch (const abi::__forced_unwind&) {
      throw;  // a thread being ended (pthread_exit: a Python daemon thread at exit): let it end
    } catch (...) {
      interruption_ = std::current_exception();
      control.cancelled.store(true, std::memory_order_relaxed);
    }
  }

 public:

  // In the caller, once the map has succeeded, its post_map hooks included (and so still under the
  // map's lock): combines the kernel's results (a helper's combine step), all or nothing.
  virtual void combine_results(Context& context) = 0;

 protected:
  std::atomic<std::size_t>* progress_ = nullptr;

 private:
  std::uint64_t caller_thread_ = 0;
  pid_t caller_process_ = 0;
  std::chrono::steady_clock::time_point last_check_between_chunks_{};
};

template <class F, class Kernel>
class MapJob final : public MapJobBase {
 public:
  // Throws std::invalid_argument for a dynamic schedule of a functor that is not indexed.
  MapJob(F& functor, Kernel& kernel, int num_workers, const MapOptions& options) : functor_(functor), kernel_(kernel) {
    if (options.interrupt_check) caller_check_ = &options.interrupt_check;
    writes_ = &options.writes;
    if constexpr (KernelWithMapHooks<Kernel>) {
      MapHookList hooks;
      kernel.pasha_add_map_hooks(hooks);
      static_assert(MapHookList::kCapacity <= kMaxMapHooks);
      for (std::size_t i = 0; i < hooks.size(); ++i) map_hooks_[i] = hooks[i];
      num_map_hooks_ = hooks.size();
    }
    if constexpr (IndexedFunctor<F>) num_elements_ = static_cast<std::size_t>(functor.size());
    if (options.schedule == Schedule::dynamic) {
      if constexpr (IndexedFunctor<F>) {
        plan_chunks(num_workers, options.chunk);
        return;
      } else {
        throw std::invalid_argument(std::string("pasha::map: Schedule::dynamic needs an indexed functor (shares of "
                                                "pasha::IndexRange and a size()); ") +
                                    readable_type_name(typeid(F)) + " is not one");
      }
    }
    shares_ = split_shares(functor, num_workers);
    handed_out_ = shares_.size() > static_cast<std::size_t>(num_workers);
    num_active_workers_ = static_cast<int>(std::min(shares_.size(), static_cast<std::size_t>(num_workers)));
  }

  void combine_results(Context& context) override { detail::combine_results(kernel_, context); }

  void run(int worker_id, backend::WorkerControl& control) override {
    run_elements(worker_id, control);
    check_caller_between_chunks(control, /*spaced=*/false);  // the caller's share is over
  }

 private:
  void run_elements(int worker_id, backend::WorkerControl& control) {
    const KernelVisitor<Kernel> visit{kernel_, worker_id};
    if constexpr (IndexedFunctor<F>) {
      if (chunk_ > 0) {
        run_chunks(visit, control);
        return;
      }
    }
    if (!handed_out_) {
      run_share(shares_[static_cast<std::size_t>(worker_id)], visit, control);
      return;
    }
    const std::size_t last = std::min(shares_.size(), position_end_);
    while (!control.cancelled.load(std::memory_order_relaxed)) {
      const std::size_t s = position_begin_ + control.next_position.fetch_add(1, std::memory_order_relaxed);
      if (s >= last) return;
      run_share(shares_[s], visit, control);
      check_caller_between_chunks(control);
    }
  }

 public:
  std::optional<IndexRange> indices_of_part(int first, int count) const override {
    if constexpr (IndexedFunctor<F>) {
      if (chunk_ > 0) return portion(size_, first, count);
      const IndexRange shares = handed_out_ ? portion(shares_.size(), first, count)
                                            : IndexRange{static_cast<std::size_t>(first),
                                                         static_cast<std::size_t>(first + count)};
      return hull(shares);
    } else {
      return std::nullopt;
    }
  }

  void restrict_to_part(int first, int count) override {
    const IndexRange part = portion(chunk_ > 0 ? size_ : shares_.size(), first, count);
    if (chunk_ > 0 || handed_out_) {
      position_begin_ = part.begin;
      position_end_ = part.end;
    }
  }

 private:
  void run_share(const share_t<F>& share, const KernelVisitor<Kernel>& visit, backend::WorkerControl& control) {
    if constexpr (IndexedFunctor<F>) {
      const std::size_t interval = cancel_check_interval(share.size());
      for (std::size_t begin = share.begin; begin < share.end;) {
        const std::size_t end = share.end - begin > interval ? begin + interval : share.end;
        iterate_chunk(IndexRange{begin, end}, visit, control);
        begin = end;
        if (begin < share.end) check_caller_between_chunks(control);
        if (begin < share.end && control.cancelled.load(std::memory_order_relaxed)) return;
      }
    } else {
      iterate_share(functor_, share, visit, control.cancelled, progress_);
    }
  }

  // One chunk of an indexed functor: progress is counted per chunk.
  void iterate_chunk(const IndexRange& chunk, const KernelVisitor<Kernel>& visit, backend::WorkerControl& control) {
    iterate_share(functor_, chunk, visit, control.cancelled, nullptr);
    if (progress_ != nullptr) progress_->fetch_add(chunk.size(), std::memory_order_relaxed);
  }

  // Dynamic schedule: chunks claimed with a compare-and-swap, so that the counter never passes the
  // end (a fetch_add of a huge chunk could wrap around and hand out elements twice). The counter
  // holds the offset from position_begin_.
  void run_chunks(const KernelVisitor<Kernel>& visit, backend::WorkerControl& control) {
    const std::size_t base = position_begin_;
    const std::size_t limit = std::min(size_, position_end_);
    while (!control.cancelled.load(std::memory_order_relaxed)) {
      std::size_t offset = control.next_position.load(std::memory_order_relaxed);
      std::size_t begin = 0;
      std::size_t end = 0;
      do {
        begin = base + offset;
        if (begin >= limit) return;
        end = limit - begin > chunk_ ? begin + chunk_ : limit;
      } while (!control.next_position.compare_exchange_weak(offset, end - base, std::memory_order_relaxed));
      iterate_chunk(IndexRange{begin, end}, visit, control);
      check_caller_between_chunks(control);
    }
  }

  // The portion of [0, total) that active workers [first, first + count) take, in proportion.
  IndexRange portion(std::size_t total, int first, int count) const noexcept {
    const auto cut = [&](int w) {
      return static_cast<std::size_t>(static_cast<unsigned __int128>(total) * static_cast<unsigned>(w) /
                                      static_cast<unsigned>(std::max(num_active_workers_, 1)));
    };
    return {cut(first), cut(first + count)};
  }

  // The indices shares [range.begin, range.end) cover, when they lie end to end in ascending order.
  std::optional<IndexRange> hull(const IndexRange& range) const {
    if constexpr (IndexedFunctor<F>) {
      const std::size_t end = std::min(range.end, shares_.size());
      if (range.begin >= end) return IndexRange{};
      for (std::size_t s = range.begin + 1; s < end; ++s) {
        if (shares_[s].begin != shares_[s - 1].end) return std::nullopt;
      }
      return IndexRange{shares_[range.begin].begin, shares_[end - 1].end};
    } else {
      return std::nullopt;
    }
  }

  void plan_chunks(int num_workers, std::size_t chunk) {
    size_ = static_cast<std::size_t>(functor_.size());
    const auto workers = static_cast<std::size_t>(num_workers);
    chunk_ = chunk == 0 ? std::max<std::size_t>(1, size_ / (16 * workers)) : std::min(chunk, std::max<std::size_t>(size_, 1));
    const std::size_t chunks = size_ / chunk_ + (size_ % chunk_ != 0 ? 1 : 0);
    num_active_workers_ = static_cast<int>(std::min(chunks, workers));
  }

  F& functor_;
  Kernel& kernel_;
  std::vector<share_t<F>> shares_;
  bool handed_out_ = false;  // more shares than workers: taken from control.next_position
  std::size_t size_ = 0;     // dynamic schedule: the functor's size
  std::size_t chunk_ = 0;    // dynamic schedule: elements per chunk (0: static shares)
  // Handed-out work (chunks, or shares beyond one per worker) this job takes: all, unless a context
  // restricted it to a part (restrict_to_part).
  std::size_t position_begin_ = 0;
  std::size_t position_end_ = SIZE_MAX;
};

// The unwinding rule of pasha/core/hooks.h, once for every pair of hook calls: calls pre(i) for hooks
// i = 0, 1, ... of `count`, then `body`, then post(i) for every hook whose pre returned, last first,
// whatever failed. Rethrows the first failure; a later one is dropped.
template <class Pre, class Body, class Post>
void run_between(std::size_t count, Pre&& pre, Body&& body, Post&& post) {
  std::exception_ptr error;
  std::size_t started = 0;
  try {
    for (; started < count; ++started) pre(started);
    body();
  } catch (const abi::__forced_unwind&) {
    throw;  // a thread being ended (pthread_exit: a Python daemon thread at exit): let it end
  } catch (...) {
    error = std::current_exception();
  }
  while (started-- > 0) {
    try {
      post(started);
    } catch (const abi::__forced_unwind&) {
      throw;  // a thread being ended (pthread_exit: a Python daemon thread at exit): let it end
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// Calls `body` between the pre_map/pre_worker and post_worker/post_map calls of `hooks`, for one
// worker. For a nested map's own hooks.
template <class Body>
void run_between_hooks(const MapHookList& hooks, Context& context, int worker_id, Body&& body) {
  run_between(
      hooks.size(), [&](std::size_t i) { hooks[i]->pre_map(context); },
      [&] {
        run_between(
            hooks.size(), [&](std::size_t i) { hooks[i]->pre_worker(context, worker_id); }, body,
            [&](std::size_t i) { hooks[i]->post_worker(context, worker_id); });
      },
      [&](std::size_t i) { hooks[i]->post_map(context); });
}

// Runs a map started from inside a kernel: inline, on the calling worker (whose id the kernel gets),
// as a serial context would, without the context's hooks (a helper's hooks still run: they belong to
// the map).
template <class F, class Kernel>
void run_nested(F& functor, Kernel& kernel, int worker_id, Context& context) {
  const KernelVisitor<Kernel> visit{kernel, worker_id};
  const std::atomic<bool> never_cancelled{false};
  const auto run = [&] {
    for (const auto& share : split_shares(functor, 1)) iterate_share(functor, share, visit, never_cancelled, nullptr);
  };
  if constexpr (KernelWithMapHooks<Kernel>) {
    MapHookList hooks;
    kernel.pasha_add_map_hooks(hooks);
    run_between_hooks(hooks, context, worker_id, run);
    combine_results(kernel, context);
  } else {
    run();
  }
}

}  // namespace pasha::detail

#endif  // PASHA_CORE_DETAIL_MAP_JOB_H_
