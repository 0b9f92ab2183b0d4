// Whose turn it is to map on a context: the map lock, and the threads that cannot wait for it (threads
// that a running map's kernels or hooks started and now wait for). See Context::map.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pasha/core/context.h"
#include "pasha/core/detail/worker_identity.h"

namespace pasha {
namespace {

using Clock = std::chrono::steady_clock;

// How long a map waiting for its turn sleeps between looks at the running map's threads, and how long
// those must all be seen blocked before the waiting map is taken for one of theirs.
constexpr auto kTurnSlice = std::chrono::milliseconds(20);
constexpr auto kStalledFor = std::chrono::seconds(1);

// Whether thread `tid` of this process is blocked (sleeping in the kernel: waiting on a lock, a
// condition variable, a join, a timed wait, a sleep, a read), as /proc says; false if it has gone.
bool blocked(pid_t tid) {
  std::ifstream stat("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const std::size_t name_end = line.rfind(')');  // the thread's name may hold spaces and parentheses
  if (name_end == std::string::npos || name_end + 2 >= line.size()) return false;
  const char state = line[name_end + 2];
  return state == 'S' || state == 'D';
}

}  // namespace

Context::MapHolder::MapHolder(Context& context)
    : context_(context),
      token_(context.map_holder_.exchange(detail::this_thread_token(), std::memory_order_acq_rel)),
      thread_(context.holder_thread_.exchange(detail::this_thread_id(), std::memory_order_acq_rel)),
      in_hooks_(context.holder_in_hooks_.exchange(true, std::memory_order_acq_rel)) {}

Context::MapHolder::~MapHolder() {
  context_.holder_in_hooks_.store(in_hooks_, std::memory_order_release);
  context_.holder_thread_.store(thread_, std::memory_order_release);
  context_.map_holder_.store(token_, std::memory_order_release);
}

std::vector<std::pair<int, pid_t>> Context::watched_threads() const {
  std::vector<std::pair<int, pid_t>> watched;
  for (int w = 0; w < num_workers_; ++w) {
    const pid_t tid = worker_threads_[static_cast<std::size_t>(w)].load(std::memory_order_acquire);
    if (tid != 0) watched.emplace_back(w, tid);
  }
  if (watched.empty() && holder_in_hooks_.load(std::memory_order_acquire)) {
    // No worker runs while the caller is in its pre_map or post_map hooks: one waiting on a thread
    // it started leaves that thread worker 0's place.
    if (const pid_t holder = holder_thread_.load(std::memory_order_acquire); holder != 0) watched.emplace_back(0, holder);
  }
  return watched;
}

bool Context::claim_inline(int worker_id) noexcept {
  bool expected = false;
  return inline_claims_[static_cast<std::size_t>(worker_id)].compare_exchange_strong(expected, true);
}

void Context::release_inline_claim(int worker_id) noexcept {
  inline_claims_[static_cast<std::size_t>(worker_id)].store(false, std::memory_order_release);
}

std::optional<int> Context::wait_for_turn(std::unique_lock<std::recursive_timed_mutex>& lock) {
  if (lock.try_lock()) return std::nullopt;
  std::vector<std::pair<int, pid_t>> seen;
  auto blocked_since = Clock::now();
  // A system_clock deadline: libstdc++ waits for it with pthread_mutex_timedlock, which ThreadSanitizer
  // sees (a steady_clock one uses pthread_mutex_clocklock, which GCC 12's does not, and then reports
  // the unlock as one of a mutex never locked). A clock set back meanwhile only delays the next look.
  while (!lock.try_lock_until(std::chrono::system_clock::now() + kTurnSlice)) {
    const auto now = Clock::now();
    std::vector<std::pair<int, pid_t>> watched = watched_threads();
    const bool all_blocked = !watched.empty() && std::all_of(watched.begin(), watched.end(), [](const auto& thread) {
      return blocked(thread.second);
    });
    if (!all_blocked || watched != seen) {
      seen = std::move(watched);
      blocked_since = now;
      continue;
    }
    if (now - blocked_since < kStalledFor) continue;
    for (const auto& [worker_id, tid] : watched) {
      if (claim_inline(worker_id)) return worker_id;
    }
    // Every such worker's place is taken by another thread running inline: wait for one to end.
  }
  return std::nullopt;
}

void Context::take_turn(MapTurn& turn) {
  adopt_if_forked();
  turn.lock = std::unique_lock(map_mutex_, std::defer_lock);
  if (const std::optional<int> worker = wait_for_turn(turn.lock)) {
    turn.inline_worker_id = worker;
    turn.claimed_from = this;
  }
}

Context::MapTurn::~MapTurn() {
  if (claimed_from != nullptr) claimed_from->release_inline_claim(*inline_worker_id);
}

}  // namespace pasha
