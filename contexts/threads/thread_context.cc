#include "contexts/threads/thread_context.h"

#include <cxxabi.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "contexts/common/futex.h"
#include "contexts/common/machine.h"

namespace pasha {
namespace {

// Arrays of at least this many bytes are first touched by the workers that will process them.
constexpr std::size_t kFirstTouchBytes = std::size_t{4} << 20;

// How an idle pool thread watches for the next map, and the caller for the pool to finish, before
// sleeping on a futex: spinning for kSpin, then yielding the CPU between looks until the watch budget has passed.
// Yielding lets a thread that shares the CPU run (the caller is not bound and may sit on a pool
// thread's core). Short enough that an idle pool costs no measurable CPU time, long enough that
// back-to-back maps hand over without a system call.
constexpr auto kSpin = std::chrono::microseconds(20);
constexpr auto kWorkerWatch = std::chrono::microseconds(100);
constexpr auto kCallerWatch = std::chrono::microseconds(200);

constexpr FutexScope kPoolFutex = FutexScope::process_private;

void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Watches until `done()` or until `budget` has passed (spinning, then yielding); returns done().
template <class Done>
bool watch_until(Done&& done, std::chrono::microseconds budget) {
  if (budget.count() == 0) return done();
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    if (elapsed >= budget) return done();
    if (elapsed >= kSpin) sched_yield();
  }
}

// Faults in the pages of a fresh array, worker w taking the w-th of num_workers even byte shares:
// the shares a static map over the array's elements gives each worker.
class FirstTouchJob final : public backend::Job {
 public:
  FirstTouchJob(void* memory, std::size_t bytes, int num_workers)
      : memory_(static_cast<unsigned char*>(memory)), bytes_(bytes), num_workers_(num_workers) {
    num_active_workers_ = num_workers;
  }

  void run(int worker_id, backend::WorkerControl&) override {
    const auto w = static_cast<std::size_t>(worker_id);
    const auto n = static_cast<std::size_t>(num_workers_);
    const std::size_t begin = bytes_ / n * w + std::min(w, bytes_ % n);
    const std::size_t end = begin + bytes_ / n + (w < bytes_ % n ? 1 : 0);
    const std::size_t page = page_size();
    for (std::size_t offset = begin; offset < end; offset = (offset / page + 1) * page) {
      memory_[offset] = 0;
    }
  }

 private:
  unsigned char* memory_;
  std::size_t bytes_;
  int num_workers_;
};

}  // namespace

// Worker 0 is the thread that calls map; workers 1 .. n-1 are pool threads, started on the first
// launch and parked between launches. Context runs one launch at a time (its map lock, which
// allocate's first touch takes too), so the pool needs no lock of its own.
//
// Hand-off: the caller publishes the launch (job_, failures_, control_, remaining_) and then bumps
// epoch_ (release); a pool thread that sees the new epoch (acquire) runs its share and decrements
// remaining_ (release); the caller returns once remaining_ is 0 (acquire). Every pool thread takes
// part in every launch, active or not, so that none still reads the launch's fields when the next
// launch writes them.
//
// Idle pool threads watch epoch_ for kWorkerWatch, then sleep on it (futex); the caller wakes
// sleepers only when there are some.
class ThreadContext::Pool {
 public:
  Pool(ThreadContext& context, const BindingPlan& plan)
      : context_(context), plan_(plan), spin_(plan_.num_workers() <= allowed_cpu_count()) {}

  ~Pool() { stop_threads(); }

  // Runs job's workers: through `failures` (hooks, failure records) for a map, straight job.run for
  // internal jobs (failures == nullptr), which must not throw.
  void run(backend::Job& job, backend::WorkerFailures* failures, backend::WorkerControl& control) {
    if (job.num_active_workers() <= 1) {
      run_share(job, failures, control, 0);
      return;
    }
    if (threads_.empty()) start_threads();
    job_ = &job;
    failures_ = failures;
    control_ = &control;
    remaining_.store(static_cast<std::uint32_t>(threads_.size()), std::memory_order_relaxed);
    wake_pool();
    try {
      run_share(job, failures, control, 0);
    } catch (const abi::__forced_unwind&) {
      stop_pool_before_leaving(control);
      throw;
    }
    wait_for_pool(job, control);
  }

 private:
  void run_share(backend::Job& job, backend::WorkerFailures* failures, backend::WorkerControl& control,
                 int worker_id) {
    if (worker_id >= job.num_active_workers()) return;
    if (failures != nullptr) {
      failures->run(context_, job, worker_id, control);
    } else {
      job.run(worker_id, control);
    }
  }

  void wake_pool() {
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) futex_wake_all(epoch_, kPoolFutex);
  }

  // Waits until every pool thread is done with the launch. The caller's check (Job::check_caller)
  // runs between sleeps; if it throws, the workers are cancelled, waited for, and the exception goes
  // on (no pool thread may still read the launch when the caller leaves).
  void wait_for_pool(const backend::Job& job, backend::WorkerControl& control) {
    if (watch_until([&] { return remaining_.load(std::memory_order_acquire) == 0; }, kCallerWatch)) return;
    const auto slice = job.checks_caller() ? std::chrono::nanoseconds(backend::Job::kCallerCheckInterval)
                                           : std::chrono::nanoseconds(-1);
    std::exception_ptr interruption;
    caller_sleeping_.store(true, std::memory_order_seq_cst);
    for (;;) {
      const std::uint32_t remaining = remaining_.load(std::memory_order_seq_cst);
      if (remaining == 0) break;
      futex_wait(remaining_, remaining, kPoolFutex, slice);
      if (interruption || remaining_.load(std::memory_order_acquire) == 0) continue;
      try {
        job.check_caller();
      } catch (const abi::__forced_unwind&) {
        caller_sleeping_.store(false, std::memory_order_relaxed);
        stop_pool_before_leaving(control);
        throw;
      } catch (...) {
        interruption = std::current_exception();
        control.cancelled.store(true, std::memory_order_relaxed);
      }
    }
    caller_sleeping_.store(false, std::memory_order_relaxed);
    if (interruption) std::rethrow_exception(interruption);
  }

  // The caller's thread is being ended (pthread_exit: a Python daemon thread at exit) in the middle of a
  // launch: the workers are cancelled and waited for, without the caller's check (which may end it
  // again), so that no pool thread reads the launch once the caller's frames are gone. A pool thread
  // ended the same way counts as done.
  void stop_pool_before_leaving(backend::WorkerControl& control) noexcept {
    control.cancelled.store(true, std::memory_order_relaxed);
    caller_sleeping_.store(true, std::memory_order_seq_cst);
    for (std::uint32_t remaining; (remaining = remaining_.load(std::memory_order_seq_cst)) != 0;) {
      futex_wait(remaining_, remaining, kPoolFutex, std::chrono::nanoseconds(-1));
    }
    caller_sleeping_.store(false, std::memory_order_relaxed);
  }

  // On failure, the threads already started are stopped again.
  void start_threads() {
    threads_owner_ = getpid();
    const std::uint32_t epoch = epoch_.load(std::memory_order_relaxed);
    threads_.reserve(static_cast<std::size_t>(plan_.num_workers() - 1));
    try {
      for (int w = 1; w < plan_.num_workers(); ++w) {
        threads_.emplace_back([this, w, epoch] { worker_loop(w, epoch); });
      }
    } catch (...) {
      stop_threads();
      throw;
    }
  }

  void stop_threads() {
    if (threads_.empty()) return;
    if (backend::this_process_id() != threads_owner_) {
      // A forked child (a worker process, or a user's fork) that never used the context: the threads
      // exist only in the parent. Their handles cannot be joined or destroyed here; let them go.
      static_cast<void>(new std::vector<std::thread>(std::move(threads_)));
      threads_.clear();
      return;
    }
    stopping_ = true;
    wake_pool();
    for (auto& thread : threads_) thread.join();
    threads_.clear();
    stopping_ = false;
  }

  void worker_loop(int worker_id, std::uint32_t seen) {
    const std::string name = "pasha-w" + std::to_string(worker_id);
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    bool bound = false;
    for (;;) {
      seen = wait_for_launch(seen);
      if (stopping_) return;
      if (!bound) bound = plan_.bind_this_thread(worker_id);
      try {
        if (bound || failures_ == nullptr) {
          run_share(*job_, failures_, *control_, worker_id);
        } else if (worker_id < job_->num_active_workers()) {
          failures_->record(worker_id, binding_failure(worker_id), *control_);
        }
      } catch (const abi::__forced_unwind&) {
        finish_share();  // this thread is being ended (pthread_exit): it is done with the launch
        throw;
      }
      finish_share();
    }
  }

  void finish_share() noexcept {
    if (remaining_.fetch_sub(1, std::memory_order_seq_cst) == 1 && caller_sleeping_.load(std::memory_order_seq_cst)) {
      futex_wake_all(remaining_, kPoolFutex);
    }
  }

  std::exception_ptr binding_failure(int worker_id) const {
    return std::make_exception_ptr(std::runtime_error("pasha::ThreadContext: the OS refused to bind worker " +
                                                      std::to_string(worker_id) + " to cpuset " +
                                                      plan_.cpuset(worker_id) +
                                                      " (pasha::Binding::none runs unbound)"));
  }

  // Returns the new epoch once the caller has published a launch.
  std::uint32_t wait_for_launch(std::uint32_t seen) {
    const auto launched = [&] { return epoch_.load(std::memory_order_acquire) != seen; };
    if (!watch_until(launched, spin_ ? kWorkerWatch : std::chrono::microseconds(0))) {
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      while (epoch_.load(std::memory_order_seq_cst) == seen) futex_wait(epoch_, seen, kPoolFutex);
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
    }
    return epoch_.load(std::memory_order_acquire);
  }

  ThreadContext& context_;
  const BindingPlan& plan_;
  // Spinning only pays when every worker has a CPU of its own.
  const bool spin_;

  std::vector<std::thread> threads_;
  pid_t threads_owner_ = 0;  // the process that started threads_

  // The launch, written by the caller before it bumps epoch_.
  backend::Job* job_ = nullptr;
  backend::WorkerFailures* failures_ = nullptr;
  backend::WorkerControl* control_ = nullptr;
  bool stopping_ = false;

  alignas(64) std::atomic<std::uint32_t> epoch_{0};
  std::atomic<int> sleepers_{0};
  alignas(64) std::atomic<std::uint32_t> remaining_{0};
  std::atomic<bool> caller_sleeping_{false};
};

ThreadContext::ThreadContext() : ThreadContext(default_num_workers()) {}

std::string to_string(FirstTouch first_touch) {
  switch (first_touch) {
    case FirstTouch::numa_nodes:
      return "numa";
    case FirstTouch::always:
      return "always";
    case FirstTouch::never:
      return "never";
  }
  return "?";
}

FirstTouch parse_first_touch(std::string_view name) {
  for (const FirstTouch choice : {FirstTouch::numa_nodes, FirstTouch::always, FirstTouch::never}) {
    if (name == to_string(choice)) return choice;
  }
  throw std::invalid_argument("pasha: first_touch must be 'numa', 'always' or 'never', not '" + std::string(name) +
                              "'");
}

ThreadContext::ThreadContext(int num_workers, Binding binding, FirstTouch first_touch)
    : BoundContext(num_workers, binding),
      pool_(std::make_unique<Pool>(*this, plan_)),
      workers_touch_first_(binding != Binding::none && num_workers > 1 &&
                           (first_touch == FirstTouch::always ||
                            (first_touch == FirstTouch::numa_nodes && plan_.num_numa_nodes() > 1))) {}

ThreadContext::~ThreadContext() = default;

void ThreadContext::rebuild_after_fork() {
  // The pool's threads do not exist in this process: its thread objects cannot be joined or
  // destroyed, so the old pool is let go without its destructor, and a new one starts on first use.
  static_cast<void>(pool_.release());
  pool_ = std::make_unique<Pool>(*this, plan_);
}

std::shared_ptr<void> ThreadContext::allocate(std::size_t bytes) {
  std::shared_ptr<void> memory = backend::allocate_heap(bytes, kAlignment);
  if (bytes >= kFirstTouchBytes && workers_touch_first_ && this_worker_id() < 0) {
    // Only when the pool is free: a map in progress (perhaps the one whose kernel started the thread
    // calling this) keeps it, and pages are then touched where the kernels first write them.
    FirstTouchJob touch(memory.get(), bytes, num_workers());
    backend::WorkerControl control;
    try_exclusively([&] { pool_->run(touch, nullptr, control); });
  }
  return memory;
}

bool ThreadContext::allocates_zeros(std::size_t bytes) const { return backend::heap_reads_as_zeros(bytes, kAlignment); }

void ThreadContext::launch(backend::Job& job) {
  backend::WorkerControl control;
  backend::WorkerFailures failures(job.num_active_workers());
  pool_->run(job, &failures, control);
  failures.rethrow_lowest();
}

}  // namespace pasha
