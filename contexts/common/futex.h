// Waiting on a 32-bit word without a lock: Linux futexes, for the thread and process contexts.
#ifndef PASHA_CONTEXTS_COMMON_FUTEX_H_
#define PASHA_CONTEXTS_COMMON_FUTEX_H_

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>

namespace pasha {

// Whether the word is seen only by this process's threads (cheaper) or also by other processes that
// map the same memory.
enum class FutexScope { process_private, shared };

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
              std::atomic<std::uint32_t>::is_always_lock_free);

// Sleeps while `word` holds `expected`, until woken, for at most `timeout` (negative: no limit).
// Returns early on a spurious wake-up or a signal: callers re-check the word.
inline void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected, FutexScope scope,
                       std::chrono::nanoseconds timeout = std::chrono::nanoseconds(-1)) noexcept {
  const int op = scope == FutexScope::shared ? FUTEX_WAIT : FUTEX_WAIT_PRIVATE;
  timespec limit{};
  timespec* limit_pointer = nullptr;
  if (timeout.count() >= 0) {
    limit.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
    limit.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
    limit_pointer = &limit;
  }
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), op, expected, limit_pointer, nullptr, 0);
}

// Wakes every thread (or process) sleeping on `word`.
inline void futex_wake_all(std::atomic<std::uint32_t>& word, FutexScope scope) noexcept {
  const int op = scope == FutexScope::shared ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE;
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), op, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace pasha

#endif  // PASHA_CONTEXTS_COMMON_FUTEX_H_
