// The errors pasha reports.
#ifndef PASHA_CORE_ERRORS_H_
#define PASHA_CORE_ERRORS_H_

#include <new>
#include <stdexcept>
#include <string>
#include <typeinfo>

namespace pasha {

// Thrown by `map` in the caller when a worker failed: its kernel (or a hook) threw, or, in a process
// context, the worker process died or exited early. When several workers fail, the error of the
// lowest worker id is reported.
//
// `what()` names the worker and contains the original message. The cause is always nested:
// `std::rethrow_if_nested(error)` rethrows the original exception in serial and thread contexts, and
// a pasha::RemoteError (type name and message of the original, or how the process died) in process
// contexts, where an exception object cannot cross the process boundary.
class WorkerError : public std::runtime_error, public std::nested_exception {
 public:
  // Nests the exception currently being handled; call it inside a catch block.
  WorkerError(int worker_id, const std::string& what);
  int worker_id() const noexcept { return worker_id_; }

 private:
  int worker_id_;
};

// The cause nested in a WorkerError from a worker process: what is known of the original failure.
class RemoteError : public std::runtime_error {
 public:
  RemoteError(std::string type_name, const std::string& message, std::string payload = {});
  // The demangled type of the exception the kernel threw, or "signal" / "exit" for a process that died
  // (for an ErrorWithPayload: the type name it gave).
  const std::string& type_name() const noexcept { return type_name_; }
  // The bytes an ErrorWithPayload carried, or "" (any other exception, a process that died).
  const std::string& payload() const noexcept { return payload_; }

 private:
  std::string type_name_;
  std::string payload_;
};

// An exception that describes itself for a caller in another process: a type name, a message and
// opaque bytes (at most backend::ErrorRecord::kPayloadSize are kept) from which an embedding rebuilds
// the original failure (the Python package puts a Python exception's pickle there). Thrown by a kernel
// in a worker process, it reaches the caller as the RemoteError nested in map's WorkerError, with the
// same type name, message and payload; thrown in the caller's process, it is nested as itself.
class ErrorWithPayload : public std::runtime_error {
 public:
  ErrorWithPayload(std::string type_name, const std::string& message, std::string payload);
  const std::string& type_name() const noexcept { return type_name_; }
  const std::string& payload() const noexcept { return payload_; }

 private:
  std::string type_name_;
  std::string payload_;
};

// Thrown by alloc when the memory cannot be had: a std::bad_alloc whose what() names the byte size and
// the reason.
class AllocationError : public std::bad_alloc {
 public:
  explicit AllocationError(const std::string& message) : message_(message) {}
  const char* what() const noexcept override { return message_.what(); }

 private:
  std::runtime_error message_;  // a string that copies without throwing
};

namespace detail {
// `type`'s name as written in C++ ("std::vector<int>"), for error messages.
std::string readable_type_name(const std::type_info& type);
}  // namespace detail

}  // namespace pasha

#endif  // PASHA_CORE_ERRORS_H_
