#include "pasha/core/fork_safe_mutex.h"

#include <pthread.h>

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

void ForkSafeBase::enroll() {
  ForkSafeList& list = ForkSafeList::instance();
  std::lock_guard lock(list.mutex);
  previous_ = list.last;
  (previous_ != nullptr ? previous_->next_ : list.first) = this;
  list.last = this;
}

void ForkSafeBase::withdraw() {
  ForkSafeList& list = ForkSafeList::instance();
  std::lock_guard lock(list.mutex);
  (previous_ != nullptr ? previous_->next_ : list.first) = next_;
  (next_ != nullptr ? next_->previous_ : list.last) = previous_;
}

}  // namespace pasha::detail
