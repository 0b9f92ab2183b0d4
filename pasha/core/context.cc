#include "pasha/core/context.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>

#include "pasha/core/detail/progress.h"
#include "pasha/core/detail/worker_identity.h"

namespace pasha {
namespace {

// How long a map waiting for its turn sleeps between looks at the running map's workers, and how
// long those must all stay blocked before the waiting map is taken for one of theirs.
constexpr auto kTurnSlice = std::chrono::milliseconds(50);
constexpr auto kStalledFor = std::chrono::seconds(1);

// A number that identifies the calling thread among the live threads of this process.
std::uint64_t this_thread_token() noexcept {
  thread_local const char token = 0;
  return reinterpret_cast<std::uintptr_t>(&token);
}

// What /proc says of thread `tid` of this process: blocked in futex() (a lock, a condition variable,
// a join), and how often it has been switched out on its own so far (which moves whenever it wakes).
// nullopt when it is not blocked in futex, or has gone.
std::optional<std::uint64_t> futex_wait_count(pid_t tid) {
  const std::string task = "/proc/self/task/" + std::to_string(tid) + "/";
  long syscall_number = -1;
  if (std::ifstream in(task + "syscall"); !(in >> syscall_number) || syscall_number != SYS_futex) return std::nullopt;
  std::ifstream status(task + "status");
  std::string field;
  while (status >> field) {
    if (field == "voluntary_ctxt_switches:") {
      std::uint64_t switches = 0;
      if (status >> switches) return switches;
      return std::nullopt;
    }
  }
  return std::nullopt;
}

}  // namespace

int checked_num_workers(int num_workers) {
  if (num_workers < 1 || num_workers > kMaxWorkers) {
    throw std::invalid_argument("pasha: num_workers must be between 1 and " + std::to_string(kMaxWorkers) +
                                ", got " + std::to_string(num_workers));
  }
  return num_workers;
}

Context::Context(int num_workers)
    : num_workers_(checked_num_workers(num_workers)),
      owner_pid_(getpid()),
      worker_threads_(new std::atomic<pid_t>[static_cast<std::size_t>(num_workers)]) {
  for (int w = 0; w < num_workers_; ++w) worker_threads_[static_cast<std::size_t>(w)].store(0);
}

Context::~Context() = default;

Context::RawArray Context::alloc_raw(const Shape& shape, std::size_t element_size, Order order, bool per_worker,
                                     bool pad_worker_slices) {
  if (element_size == 0) throw std::invalid_argument("pasha::alloc: elements of 0 bytes");
  const detail::Layout layout = [&] {
    if (!per_worker) return detail::contiguous_layout(shape, element_size, order);
    if (pad_worker_slices) return detail::per_worker_layout(shape, element_size, order, num_workers_, kAlignment);
    Shape full = shape;
    full.insert(order == Order::C ? 0 : full.ndim(), static_cast<std::size_t>(num_workers_));
    return detail::contiguous_layout(full, element_size, order);
  }();
  std::shared_ptr<void> memory = allocate_array({.shape = layout.shape,
                                                 .strides = layout.strides,
                                                 .element_size = element_size,
                                                 .order = order,
                                                 .per_worker = per_worker,
                                                 .bytes = layout.bytes});
  void* data = memory.get();
  return {std::move(memory), data, layout.shape, layout.strides, layout.bytes};
}

void Context::add_hook(std::shared_ptr<MapHook> hook) {
  if (!hook) throw std::invalid_argument("pasha: add_hook got a null hook");
  const auto inside_a_map = [] {
    return std::logic_error("pasha: add_hook from inside a map of the same context (a hook or a kernel), whose hooks "
                            "are in use; add hooks before or after its maps");
  };
  if (map_holder_.load(std::memory_order_acquire) == this_thread_token()) throw inside_a_map();
  adopt_if_forked();
  std::unique_lock lock(map_mutex_, std::defer_lock);
  if (this_worker_id() >= 0) {
    if (!lock.try_lock()) throw inside_a_map();  // waiting could wait for the kernel calling us
  } else {
    lock.lock();
  }
  hooks_.push_back(std::move(hook));
}

void Context::adopt_if_forked() {
  const pid_t pid = getpid();
  if (owner_pid_.load(std::memory_order_acquire) == pid) return;
  // In a worker process the context's state is the running map's, inherited on purpose.
  if (this_worker_id() >= 0) return;
  // One thread of this process adopts; the others wait for it. A thread of a process this one was
  // forked from that was adopting does not exist here: its mark is taken over.
  for (;;) {
    pid_t adopter = adopting_pid_.load(std::memory_order_acquire);
    if (owner_pid_.load(std::memory_order_acquire) == pid) return;
    if (adopter == pid) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      continue;
    }
    if (adopting_pid_.compare_exchange_weak(adopter, pid, std::memory_order_acq_rel)) break;
  }
  try {
    // The parent's maps do not continue here; whoever held the lock at the fork does not exist here.
    new (&map_mutex_) std::recursive_timed_mutex();
    map_holder_.store(0, std::memory_order_relaxed);
    for (int w = 0; w < num_workers_; ++w) worker_threads_[static_cast<std::size_t>(w)].store(0);
    rebuild_after_fork();
  } catch (...) {
    adopting_pid_.store(0, std::memory_order_release);
    throw;
  }
  owner_pid_.store(pid, std::memory_order_release);
  adopting_pid_.store(0, std::memory_order_release);
}

std::optional<int> Context::stalled_worker(std::vector<std::uint64_t>& previous) const {
  std::vector<std::uint64_t> now;
  std::optional<int> lowest;
  bool stalled = true;
  for (int w = 0; w < num_workers_ && stalled; ++w) {
    const pid_t tid = worker_threads_[static_cast<std::size_t>(w)].load(std::memory_order_acquire);
    if (tid == 0) continue;
    const std::optional<std::uint64_t> waits = futex_wait_count(tid);
    if (!waits) {
      stalled = false;
      break;
    }
    if (!lowest) lowest = w;
    now.push_back(static_cast<std::uint64_t>(w) << 48 ^ static_cast<std::uint64_t>(tid) << 20 ^ *waits);
  }
  const bool same = stalled && lowest && now == previous;
  previous = stalled && lowest ? std::move(now) : std::vector<std::uint64_t>();
  return same ? lowest : std::nullopt;
}

Context::MapTurn Context::take_turn() {
  adopt_if_forked();
  MapTurn turn{std::unique_lock(map_mutex_, std::try_to_lock), std::nullopt};
  std::vector<std::uint64_t> seen;  // the blocked workers as last seen, if all were blocked
  auto stalled_since = std::chrono::steady_clock::now();
  while (!turn.lock.owns_lock() && !turn.lock.try_lock_for(kTurnSlice)) {
    const auto now = std::chrono::steady_clock::now();
    if (const std::optional<int> worker = stalled_worker(seen)) {
      if (now - stalled_since >= kStalledFor) {
        turn.inline_worker_id = worker;
        return turn;
      }
    } else {
      stalled_since = now;  // not (or not the same) blocked workers: the second starts again
    }
  }
  return turn;
}

void Context::run_job(detail::MapJobBase& job, const MapOptions& options) {
  // map holds the turn's lock; map_holder_ names this thread until the map ends (a hook's own map,
  // which takes the lock again, hands it back to the outer map).
  struct Holder {
    std::atomic<std::uint64_t>& holder;
    const std::uint64_t previous = holder.exchange(this_thread_token(), std::memory_order_acq_rel);
    ~Holder() { holder.store(previous, std::memory_order_release); }
  } holder{map_holder_};
  const detail::MapHookSequence hooks(hooks_, job);
  detail::run_between(
      hooks.size(), [&](std::size_t i) { hooks[i].pre_map(*this); },
      [&] {
        if (options.progress) {
          run_with_progress(job, options);
        } else {
          launch(job);
        }
      },
      [&](std::size_t i) { hooks[i].post_map(*this); });
  // Nothing more can fail the map: a helper's results are combined now, or not at all.
  job.combine_results(*this);
}

void Context::run_with_progress(detail::MapJobBase& job, const MapOptions& options) {
  // The counter goes where every worker can reach it: context memory (shared with worker processes).
  const std::shared_ptr<void> memory = allocate(sizeof(std::atomic<std::size_t>));
  auto* done = new (memory.get()) std::atomic<std::size_t>(0);
  job.count_progress_in(done);
  const ProgressScope scope = progress_scope();
  if (!scope.report_here) {
    launch(job);
    return;
  }
  detail::ProgressReport report(*done, job.num_elements(), scope.share_of_elements, options.progress_every,
                                STDERR_FILENO, ::isatty(STDERR_FILENO) == 1);
  launch(job);  // on failure, the report's destructor ends it as failed
  report.finish(true);
}

}  // namespace pasha
