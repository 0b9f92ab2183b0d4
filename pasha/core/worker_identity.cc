#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

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

namespace detail {

WorkerIdScope::WorkerIdScope(int worker_id) noexcept : previous_(thread_worker_id) { thread_worker_id = worker_id; }
WorkerIdScope::~WorkerIdScope() { thread_worker_id = previous_; }

void set_process_worker_id(int worker_id) noexcept { process_worker_id.store(worker_id, std::memory_order_relaxed); }

pid_t this_thread_id() noexcept {
  // Not cached across fork: a child's thread gets its own id.
  thread_local pid_t cached = 0;
  thread_local pid_t cached_in = 0;
  const pid_t process = getpid();
  if (cached_in != process) {
    cached = static_cast<pid_t>(syscall(SYS_gettid));
    cached_in = process;
  }
  return cached;
}

}  // namespace detail
}  // namespace pasha
