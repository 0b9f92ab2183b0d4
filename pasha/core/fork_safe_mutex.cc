#include "pasha/core/fork_safe_mutex.h"

#include <pthread.h>

#include <cstdio>
#include <cstdlib>
#include <new>

namespace pasha::detail {

// The live ForkSafe mutexes, oldest first, and the fork handlers that lock and unlock them. Never
// destroyed, so that mutexes with static storage may outlive it.
struct ForkSafeList {
  std::mutex mutex;
  ForkSafeBase* first = nullptr;
  ForkSafeBase* last = nullptr;

  static ForkSafeList& instance() {
    static ForkSafeList* const list = [] {
      auto* created = new ForkSafeList;
      pthread_atfork(&prepare, &parent, &child);
      return created;
    }();
    return *list;
  }

  static void prepare() {
    ForkSafeList& list = instance();
    list.mutex.lock();
    for (ForkSafeBase* m = list.first; m != nullptr; m = m->next_) m->lock_for_fork();
  }

  // The forking thread holds them all: the parent lets them go, the child starts them afresh.
  static void parent() {
    ForkSafeList& list = instance();
    for (ForkSafeBase* m = list.first; m != nullptr; m = m->next_) m->unlock_in_parent();
    list.mutex.unlock();
  }

  static void child() {
    ForkSafeList& list = instance();
    for (ForkSafeBase* m = list.first; m != nullptr; m = m->next_) m->renew_in_child();
    new (&list.mutex) std::mutex();
  }
};

namespace {

thread_local int held_by_this_thread = 0;

// Making or destroying a ForkSafe mutex while holding one: the lock order fork()'s prepare handler
// reverses. Rare, timing-dependent as a deadlock, certain as a bug: said once, loudly.
void check_no_fork_safe_mutex_held(const char* what) noexcept {
  if (held_by_this_thread == 0) return;
  std::fprintf(stderr,
               "pasha: a ForkSafe mutex was %s while the thread held another (%d held): a fork in another "
               "thread could deadlock with it. This is a bug in pasha or in a context built on it.\n",
               what, held_by_this_thread);
  std::abort();
}

}  // namespace

void ForkSafeBase::count_held(int change) noexcept { held_by_this_thread += change; }

namespace {
// pasha's pthread_atfork handlers are registered when the program (or the Python module) is loaded,
// before any of the program's own: a child handler of the program's that uses pasha then runs after
// pasha's has renewed its mutexes (child handlers run in the order they were registered).
[[maybe_unused]] const bool kRegisteredAtLoad = (ForkSafeList::instance(), true);
}  // namespace

void ForkSafeBase::enroll() {
  check_no_fork_safe_mutex_held("made");
  ForkSafeList& list = ForkSafeList::instance();
  std::lock_guard lock(list.mutex);
  previous_ = list.last;
  (previous_ != nullptr ? previous_->next_ : list.first) = this;
  list.last = this;
}

void ForkSafeBase::withdraw() {
  check_no_fork_safe_mutex_held("destroyed");
  ForkSafeList& list = ForkSafeList::instance();
  std::lock_guard lock(list.mutex);
  (previous_ != nullptr ? previous_->next_ : list.first) = next_;
  (next_ != nullptr ? next_->previous_ : list.last) = previous_;
}

}  // namespace pasha::detail
