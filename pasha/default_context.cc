#include "pasha/default_context.h"

#include <mutex>
#include <stdexcept>
#include <string>

#include "contexts/process_context.h"
#include "contexts/serial_context.h"
#include "contexts/thread_context.h"

namespace pasha {
namespace {

std::mutex default_mutex;

std::shared_ptr<Context>& default_slot() {
  static std::shared_ptr<Context> context;
  return context;
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

Context& default_context() {
  std::lock_guard lock(default_mutex);
  auto& context = default_slot();
  if (!context) context = make_context("processes");
  return *context;
}

void set_default_context(std::shared_ptr<Context> context) {
  if (!context) throw std::invalid_argument("pasha: set_default_context got a null context");
  std::lock_guard lock(default_mutex);
  default_slot() = std::move(context);
}

void set_default_context(std::string_view name, std::optional<int> num_workers) {
  set_default_context(make_context(name, num_workers));
}

}  // namespace pasha
