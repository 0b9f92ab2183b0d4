#include "pasha/errors.h"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <typeinfo>

namespace pasha {

WorkerError::WorkerError(int worker_id, const std::string& what)
    : std::runtime_error(what), worker_id_(worker_id) {}

RemoteError::RemoteError(std::string type_name, const std::string& message)
    : std::runtime_error(message), type_name_(std::move(type_name)) {}

namespace detail {

std::string describe(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception (not derived from std::exception)";
  }
}

std::string current_exception_type_name() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  if (type == nullptr) return "unknown";
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> demangled(abi::__cxa_demangle(type->name(), nullptr, nullptr, &status),
                                                   std::free);
  return status == 0 && demangled ? demangled.get() : type->name();
}

void throw_worker_error(int worker_id, std::exception_ptr cause) {
  const std::string message = describe(cause);
  try {
    std::rethrow_exception(cause);
  } catch (...) {
    throw WorkerError(worker_id, "pasha: worker " + std::to_string(worker_id) + " failed: " + message);
  }
}

void throw_remote_worker_error(int worker_id, const std::string& type_name, const std::string& message) {
  try {
    throw RemoteError(type_name, message);
  } catch (...) {
    throw WorkerError(worker_id, "pasha: worker " + std::to_string(worker_id) + " failed: " + message);
  }
}

}  // namespace detail
}  // namespace pasha
