// Whose turn it is to map on a context: the map lock, and the mark of the thread holding it. See
// Context::map.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>

#include "pasha/core/context.h"
#include "pasha/core/detail/worker_identity.h"

namespace pasha {
namespace {

// How long one wait for the lock lasts before the next (a wait without end, in slices).
constexpr auto kTurnSlice = std::chrono::milliseconds(100);

}  // namespace

Context::MapHolder::MapHolder(Context& context)
    : context_(context), token_(context.map_holder_.exchange(detail::this_thread_token(), std::memory_order_acq_rel)) {}

Context::MapHolder::~MapHolder() { context_.map_holder_.store(token_, std::memory_order_release); }

Context::MapTurn::~MapTurn() {
  if (lock.owns_lock()) lock.unlock();
  if (served != nullptr) served->fetch_add(1, std::memory_order_acq_rel);
}

void Context::take_turn(MapTurn& turn) {
  adopt_if_forked();
  turn.lock = std::unique_lock(map_mutex_, std::defer_lock);
  if (map_holder_.load(std::memory_order_acquire) != detail::this_thread_token()) {
    // Wait for this ticket's turn (the thread before it releases the lock and moves the counter on).
    const std::uint64_t ticket = next_ticket_.fetch_add(1, std::memory_order_acq_rel);
    turn.served = &now_serving_;
    auto pause = std::chrono::microseconds(1);
    while (now_serving_.load(std::memory_order_acquire) != ticket) {
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(1000));
    }
  }
  // A system_clock deadline: libstdc++ waits for it with pthread_mutex_timedlock, which ThreadSanitizer
  // sees (a steady_clock one uses pthread_mutex_clocklock, which GCC 12's does not, and then reports
  // the unlock as one of a mutex never locked). A clock set back meanwhile only delays the next slice.
  while (!turn.lock.try_lock_until(std::chrono::system_clock::now() + kTurnSlice)) {
  }
}

}  // namespace pasha
