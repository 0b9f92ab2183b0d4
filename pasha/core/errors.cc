#include "pasha/core/errors.h"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <utility>

namespace pasha {

WorkerError::WorkerError(int worker_id, const std::string& what)
    : std::runtime_error(what), worker_id_(worker_id) {}

RemoteError::RemoteError(std::string type_name, const std::string& message, std::string payload)
    : std::runtime_error(message), type_name_(std::move(type_name)), payload_(std::move(payload)) {}

ErrorWithPayload::ErrorWithPayload(std::string type_name, const std::string& message, std::string payload)
    : std::runtime_error(message), type_name_(std::move(type_name)), payload_(std::move(payload)) {}

namespace detail {

std::string readable_type_name(const std::type_info& type) {
  int status = 0;
  const std::unique_ptr<char, void (*)(void*)> demangled(abi::__cxa_demangle(type.name(), nullptr, nullptr, &status),
                                                         std::free);
  return status == 0 && demangled ? demangled.get() : type.name();
}

}  // namespace detail
}  // namespace pasha
