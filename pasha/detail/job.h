// The type-erased unit a context runs: "worker w, run your part of this map". Internal to pasha.
//
// A context receives one Job per map and calls run_worker once per worker (in a thread or a forked
// process); the loop over elements is a template inside the Job, so the kernel is inlined and the
// only indirect call is one per worker.
#ifndef PASHA_DETAIL_JOB_H_
#define PASHA_DETAIL_JOB_H_

#include <atomic>
#include <cstddef>

namespace pasha {
class Context;
}

namespace pasha::detail {

// Shared state of one map's workers. The context places it where all workers can reach it (the
// heap for threads, shared memory for processes). Lock-free atomics only, so that it works between
// processes.
struct WorkerControl {
  // Set when a worker fails; the others stop at their next check (between chunks of elements).
  std::atomic<bool> cancelled{false};
  // The next unclaimed position, for dynamic scheduling.
  std::atomic<std::size_t> next_position{0};
};
static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<std::size_t>::is_always_lock_free);

class Job {
 public:
  virtual ~Job() = default;
  // How many workers have work: ids 0 .. num_active_workers() - 1 take part in this map.
  int num_active_workers() const noexcept { return num_active_workers_; }
  // How many elements the map visits, or kUnknownSize when the functor does not say (contexts may
  // use it to decide whether per-map preparation is worth its cost).
  static constexpr std::size_t kUnknownSize = static_cast<std::size_t>(-1);
  std::size_t num_elements() const noexcept { return num_elements_; }
  // Runs worker `worker_id`'s part. Returns early once `control.cancelled` is set; throws what the
  // kernel throws.
  virtual void run(int worker_id, WorkerControl& control) = 0;

 protected:
  int num_active_workers_ = 0;
  std::size_t num_elements_ = kUnknownSize;
};

// Runs one worker's part of `job` with its hooks, marked as inside a worker (so that a map started
// from the kernel runs inline). Throws what the kernel or a hook throws. Every context's workers go
// through here.
void run_worker(Context& context, Job& job, int worker_id, WorkerControl& control);

// True inside run_worker on this thread (and in a worker process, where it is set for good).
bool in_worker() noexcept;

// Marks this thread as a worker until the guard goes.
class InWorkerScope {
 public:
  InWorkerScope() noexcept;
  ~InWorkerScope();
  InWorkerScope(const InWorkerScope&) = delete;
  InWorkerScope& operator=(const InWorkerScope&) = delete;

 private:
  bool previous_;
};

}  // namespace pasha::detail

#endif  // PASHA_DETAIL_JOB_H_
