#include "pasha/core/fork_handlers.h"

#include <array>
#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>

namespace pasha {
namespace {

// Entries [0, count) are complete: an entry is written before count is raised past it.
struct Registry {
  std::mutex adding;  // serialises add_fork_handlers; never taken by the handlers' callers
  std::array<ForkHandlers, kMaxForkHandlers> entries{};
  std::atomic<int> count{0};
};

Registry& registry() {
  static Registry* const instance = new Registry;  // never destroyed: forks may happen at exit
  return *instance;
}

}  // namespace

void add_fork_handlers(const ForkHandlers& handlers) {
  Registry& r = registry();
  std::lock_guard lock(r.adding);
  const int n = r.count.load(std::memory_order_relaxed);
  if (n == kMaxForkHandlers) {
    throw std::length_error("pasha::add_fork_handlers: more than " + std::to_string(kMaxForkHandlers) +
                            " registrations");
  }
  r.entries[static_cast<std::size_t>(n)] = handlers;
  r.count.store(n + 1, std::memory_order_release);
}

namespace detail {

void run_fork_handlers_before() noexcept {
  const Registry& r = registry();
  for (int i = r.count.load(std::memory_order_acquire); i-- > 0;) {
    if (r.entries[static_cast<std::size_t>(i)].before) r.entries[static_cast<std::size_t>(i)].before();
  }
}

void run_fork_handlers_in_parent() noexcept {
  const Registry& r = registry();
  const int n = r.count.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) {
    if (r.entries[static_cast<std::size_t>(i)].after_in_parent) r.entries[static_cast<std::size_t>(i)].after_in_parent();
  }
}

void run_fork_handlers_in_child() noexcept {
  const Registry& r = registry();
  const int n = r.count.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) {
    if (r.entries[static_cast<std::size_t>(i)].after_in_child) r.entries[static_cast<std::size_t>(i)].after_in_child();
  }
}

}  // namespace detail
}  // namespace pasha
