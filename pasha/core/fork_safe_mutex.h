// pasha::ForkSafe<Mutex>: a mutex that a forked child finds unlocked, with the data it guards in a
// consistent state. For state that a worker process (or a user's forked child) may touch after
// fork(): a registry, a cache of open files, the default context. Part of the backend contract.
//
// Every ForkSafe mutex takes part in fork(): just before it (pthread_atfork's prepare) the forking
// thread locks every one of them, so no other thread is inside one at the fork; after it the parent
// unlocks them and the child starts them afresh (a recursive mutex remembers its owner's thread id,
// which a fork changes, so the child could not unlock it). A fork therefore waits for the critical
// sections in progress; keep them short, never call user code or fork() inside one, and never hold
// two at once (their fork-time locking order is their creation order). Making or destroying a
// ForkSafe mutex takes the lock of the list the fork handlers walk, in the other order: it must not
// happen while the thread holds a ForkSafe mutex, or a fork in another thread could deadlock with it.
// pasha checks this rule on every ForkSafe mutex made or destroyed, and ends the process with a
// message naming it when it is broken (a deadlock waiting to happen, not a recoverable error).
#ifndef PASHA_CORE_FORK_SAFE_MUTEX_H_
#define PASHA_CORE_FORK_SAFE_MUTEX_H_

#include <mutex>
#include <new>

namespace pasha {

namespace detail {

// The part of ForkSafe that does not depend on the mutex type: membership in the process-wide list
// that the fork handlers walk.
class ForkSafeBase {
 public:
  ForkSafeBase(const ForkSafeBase&) = delete;
  ForkSafeBase& operator=(const ForkSafeBase&) = delete;

 protected:
  ForkSafeBase() = default;
  ~ForkSafeBase() = default;
  // Joins (leaves) the list the fork handlers walk; called by ForkSafe once its mutex exists (before
  // it goes), so that a fork in another thread never sees a mutex half made. Checks that the calling
  // thread holds no ForkSafe mutex.
  void enroll();
  void withdraw();
  // Counts the ForkSafe mutexes the calling thread holds.
  static void count_held(int change) noexcept;

 private:
  friend struct ForkSafeList;
  virtual void lock_for_fork() = 0;
  virtual void unlock_in_parent() = 0;
  virtual void renew_in_child() = 0;
  ForkSafeBase* previous_ = nullptr;
  ForkSafeBase* next_ = nullptr;
};

}  // namespace detail

// A Lockable (std::lock_guard, std::unique_lock) over `Mutex` (std::mutex, std::recursive_mutex).
template <class Mutex = std::mutex>
class ForkSafe final : public detail::ForkSafeBase {
 public:
  ForkSafe() { enroll(); }
  ~ForkSafe() { withdraw(); }

  void lock() {
    mutex_.lock();
    count_held(1);
  }
  bool try_lock() {
    if (!mutex_.try_lock()) return false;
    count_held(1);
    return true;
  }
  void unlock() {
    count_held(-1);
    mutex_.unlock();
  }
  // In a process forked while the calling thread held the mutex (a fork handler's `before` locked it,
  // pasha/core/fork_handlers.h): makes it afresh, no longer held. A fork() child finds it made afresh
  // anyway; a child of pasha's clone3 forks, which run no pthread_atfork handler, needs this.
  void renew_held_in_child() {
    count_held(-1);
    renew_in_child();
  }

 private:
  void lock_for_fork() override { mutex_.lock(); }
  void unlock_in_parent() override { mutex_.unlock(); }
  void renew_in_child() override { new (&mutex_) Mutex(); }
  Mutex mutex_;
};

using ForkSafeMutex = ForkSafe<std::mutex>;

}  // namespace pasha

#endif  // PASHA_CORE_FORK_SAFE_MUTEX_H_
