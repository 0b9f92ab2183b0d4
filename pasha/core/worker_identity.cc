#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "pasha/core/context.h"
#include "pasha/core/detail/worker_identity.h"

namespace pasha {
namespace {

thread_local int thread_worker_id = -1;
std::atomic<int> process_worker_id{-1};

}  // namespace

int this_worker_id() noexcept {
  return thread_worker_id >= 0 ? thread_worker_id : process_worker_id.load(std::memory_order_relaxed);
}

WorkerScope::WorkerScope(int worker_id) noexcept : previous_(thread_worker_id) { thread_worker_id = worker_id; }
WorkerScope::~WorkerScope() { thread_worker_id = previous_; }

namespace detail {

WorkerIdScope::WorkerIdScope(int worker_id) noexcept
    : previous_(thread_worker_id), previous_process_(process_worker_id.load(std::memory_order_relaxed)) {
  thread_worker_id = worker_id;
  // A worker process runs one share, whose id may be numbered by a context above the one that forked
  // it (an MPI context's global ids over a process context's local ones): its threads follow the share.
  if (previous_process_ >= 0) process_worker_id.store(worker_id, std::memory_order_relaxed);
}
WorkerIdScope::~WorkerIdScope() {
  thread_worker_id = previous_;
  if (previous_process_ >= 0) process_worker_id.store(previous_process_, std::memory_order_relaxed);
}

void set_process_worker_id(int worker_id) noexcept { process_worker_id.store(worker_id, std::memory_order_relaxed); }

namespace {

// Raised in every new process, first thing: caches made in an earlier generation are stale.
std::atomic<std::uint64_t> process_generation{1};

[[maybe_unused]] const bool kNotedAtFork = (pthread_atfork(nullptr, nullptr, note_new_process), true);

}  // namespace

void note_new_process() noexcept { process_generation.fetch_add(1, std::memory_order_acq_rel); }

pid_t this_process_id() noexcept {
  thread_local pid_t cached = 0;
  thread_local std::uint64_t cached_in = 0;
  const std::uint64_t generation = process_generation.load(std::memory_order_acquire);
  if (cached_in != generation) {
    cached = getpid();
    cached_in = generation;
  }
  return cached;
}

pid_t this_thread_id() noexcept {
  thread_local pid_t cached = 0;
  thread_local std::uint64_t cached_in = 0;
  const std::uint64_t generation = process_generation.load(std::memory_order_acquire);
  if (cached_in != generation) {
    cached = static_cast<pid_t>(syscall(SYS_gettid));
    cached_in = generation;
  }
  return cached;
}

std::uint64_t this_thread_token() noexcept {
  thread_local const char token = 0;
  return reinterpret_cast<std::uintptr_t>(&token);
}

}  // namespace detail
}  // namespace pasha
