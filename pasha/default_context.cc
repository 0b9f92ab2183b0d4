#include "pasha/default_context.h"

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "contexts/processes/process_context.h"
#include "contexts/serial/serial_context.h"
#include "contexts/threads/thread_context.h"
#include "pasha/core/fork_safe_mutex.h"

namespace pasha {
namespace {

// The default context: owned by `owner`, read through `current` without a lock once it exists. The
// mutex is fork-safe: a worker process forked while another thread set the default still gets it.
struct DefaultSlot {
  ForkSafeMutex mutex;
  std::shared_ptr<Context> owner;
  std::atomic<Context*> current{nullptr};
};

DefaultSlot& default_slot() {
  static DefaultSlot slot;
  return slot;
}

}  // namespace

std::shared_ptr<Context> make_context(std::string_view name, std::optional<int> num_workers) {
  if (name == "serial") {
    if (num_workers && *num_workers != 1) {
      throw std::invalid_argument("pasha: the serial context has 1 worker, got num_workers = " +
                                  std::to_string(*num_workers));
    }
    return std::make_shared<SerialContext>();
  }
  if (name == "threads") {
    return num_workers ? std::make_shared<ThreadContext>(*num_workers) : std::make_shared<ThreadContext>();
  }
  if (name == "processes") {
    return num_workers ? std::make_shared<ProcessContext>(*num_workers) : std::make_shared<ProcessContext>();
  }
  throw std::invalid_argument("pasha: unknown context name \"" + std::string(name) +
                              "\" (expected \"serial\", \"threads\" or \"processes\")");
}

// The slot's lock is fork-safe, so nothing that takes another fork-safe lock may run under it (a
// context's construction and destruction do: their ForkSafe mutexes join and leave the list fork()
// walks): contexts are made before the lock is taken and destroyed after it is let go.
Context& default_context() {
  DefaultSlot& slot = default_slot();
  if (Context* context = slot.current.load(std::memory_order_acquire)) return *context;
  std::shared_ptr<Context> made = make_context("processes");
  std::shared_ptr<Context> unused;  // destroyed after the lock, if another thread was first
  {
    std::lock_guard lock(slot.mutex);
    if (!slot.owner) {
      slot.owner = std::move(made);
      slot.current.store(slot.owner.get(), std::memory_order_release);
    } else {
      unused = std::move(made);
    }
    return *slot.owner;
  }
}

void set_default_context(std::shared_ptr<Context> context) {
  if (!context) throw std::invalid_argument("pasha: set_default_context got a null context");
  DefaultSlot& slot = default_slot();
  std::shared_ptr<Context> replaced;  // destroyed after the lock
  std::lock_guard lock(slot.mutex);
  slot.current.store(context.get(), std::memory_order_release);
  replaced = std::exchange(slot.owner, std::move(context));
}

void set_default_context(std::string_view name, std::optional<int> num_workers) {
  set_default_context(make_context(name, num_workers));
}

}  // namespace pasha
