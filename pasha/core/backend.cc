#include "pasha/core/backend.h"

#include <cxxabi.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <typeinfo>

#include "pasha/core/detail/map_job.h"
#include "pasha/core/detail/worker_identity.h"

namespace pasha::backend {
namespace {

// A readable description of an exception: its what(), or a note that it has none.
std::string describe(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception (not derived from std::exception)";
  }
}

// The demangled type name of the exception being handled.
std::string current_exception_type_name() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  return type == nullptr ? "unknown" : pasha::detail::readable_type_name(*type);
}

std::string failure_message(int worker_id, std::string_view what) {
  return "pasha: worker " + std::to_string(worker_id) + " failed: " + std::string(what);
}

// Copies `text` into `destination` (null-terminated), cut to fit and ending in "..." if it is longer;
// never in the middle of a UTF-8 character.
void copy_truncated(char* destination, std::size_t capacity, std::string_view text) noexcept {
  static constexpr std::string_view kEllipsis = "...";
  if (text.size() < capacity) {
    std::memcpy(destination, text.data(), text.size());
    destination[text.size()] = '\0';
    return;
  }
  std::size_t keep = capacity - kEllipsis.size() - 1;
  while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xC0) == 0x80) --keep;  // a continuation byte
  std::memcpy(destination, text.data(), keep);
  std::memcpy(destination + keep, kEllipsis.data(), kEllipsis.size());
  destination[keep + kEllipsis.size()] = '\0';
}

std::string_view text_of(const char* field, std::size_t capacity) noexcept { return {field, strnlen(field, capacity)}; }

// Arrays from this size on get a private mapping of their own (allocate_heap): returned to the system
// when they go (malloc keeps freed blocks of this size in its heap once its mmap threshold has risen),
// on 2 MiB boundaries, with transparent huge pages asked for where the kernel gives them on request
// (/sys/kernel/mm/transparent_hugepage/enabled "madvise" or "always"). Fresh mappings read as zeros.
constexpr std::size_t kMappedHeapBytes = std::size_t{1} << 20;
constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

std::shared_ptr<void> allocate_mapped(std::size_t bytes) {
  const std::size_t length = bytes + kHugePageBytes;  // room to start on a 2 MiB boundary
  if (length < bytes) throw AllocationError("pasha: cannot allocate " + std::to_string(bytes) + " bytes: too large");
  void* mapping = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapping == MAP_FAILED) {
    throw AllocationError("pasha: cannot allocate " + std::to_string(bytes) + " bytes: " + std::strerror(errno));
  }
  const auto base = reinterpret_cast<std::uintptr_t>(mapping);
  const std::uintptr_t start = (base + kHugePageBytes - 1) & ~(std::uintptr_t{kHugePageBytes} - 1);
  // The unused head and tail go back at once; the array's own pages stay one mapping.
  const std::size_t head = start - base;
  static const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t used = (bytes + page - 1) & ~(page - 1);
  if (head > 0) munmap(mapping, head);
  if (length - head > used) munmap(reinterpret_cast<void*>(start + used), length - head - used);
  void* memory = reinterpret_cast<void*>(start);
  if (bytes >= kHugePageBytes) madvise(memory, used, MADV_HUGEPAGE);  // advice: refused where THP is "never"
  return std::shared_ptr<void>(memory, [used](void* p) { munmap(p, used); });
}

}  // namespace

void run_worker(Context& context, Job& job, int worker_id, WorkerControl& control) {
  const detail::WorkerIdScope scope(worker_id);
  const detail::MapHookSequence hooks(context.hooks_, job);
  detail::run_between(
      hooks.size(), [&](std::size_t i) { hooks[i].pre_worker(context, worker_id); },
      [&] { job.run(worker_id, control); }, [&](std::size_t i) { hooks[i].post_worker(context, worker_id); });
}

pid_t this_process_id() noexcept { return detail::this_process_id(); }

void launch(Context& context, Job& job) {
  if (job.num_active_workers() > context.num_workers()) {
    throw std::invalid_argument("pasha::backend::launch: a job of " + std::to_string(job.num_active_workers()) +
                                " workers on a context of " + std::to_string(context.num_workers()));
  }
  context.exclusively([&] { context.launch(job); });
}

std::shared_ptr<void> allocate(Context& context, const ArrayLayout& layout) { return context.allocate_array(layout); }

void enter_worker_process(int worker_id) noexcept { detail::set_process_worker_id(worker_id); }

void WorkerFailures::run(Context& context, Job& job, int worker_id, WorkerControl& control) {
  try {
    run_worker(context, job, worker_id, control);
  } catch (const abi::__forced_unwind&) {
    throw;  // a thread being ended (pthread_exit: a Python daemon thread at exit): let it end
  } catch (...) {
    record(worker_id, std::current_exception(), control);
  }
}

void WorkerFailures::record(int worker_id, std::exception_ptr error, WorkerControl& control) noexcept {
  errors_[static_cast<std::size_t>(worker_id)] = std::move(error);
  control.cancelled.store(true, std::memory_order_relaxed);
}

void WorkerFailures::rethrow_lowest() const {
  for (std::size_t worker = 0; worker < errors_.size(); ++worker) {
    if (!errors_[worker]) continue;
    const int worker_id = static_cast<int>(worker);
    const std::string message = failure_message(worker_id, describe(errors_[worker]));
    try {
      std::rethrow_exception(errors_[worker]);
    } catch (...) {
      throw WorkerError(worker_id, message);  // nests the original
    }
  }
}

void ErrorRecord::record_current_exception() noexcept {
  try {
    try {
      throw;
    } catch (const ErrorWithPayload& described) {
      record(described.type_name(), described.what(), described.payload());
    } catch (...) {
      record(current_exception_type_name(), describe(std::current_exception()));
    }
  } catch (...) {
    record("unknown", "the worker failed, and ran out of memory describing why");
  }
}

void ErrorRecord::record(std::string_view type, std::string_view text, std::string_view bytes) noexcept {
  copy_truncated(type_name, sizeof(type_name), type);
  copy_truncated(message, sizeof(message), text);
  payload_size = bytes.size() <= kPayloadSize ? static_cast<std::uint32_t>(bytes.size()) : 0;
  if (payload_size > 0) std::memcpy(payload, bytes.data(), payload_size);
}

std::string_view ErrorRecord::type_name_text() const noexcept { return text_of(type_name, sizeof(type_name)); }

std::string_view ErrorRecord::message_text() const noexcept { return text_of(message, sizeof(message)); }

std::string_view ErrorRecord::payload_bytes() const noexcept {
  return {payload, payload_size <= kPayloadSize ? payload_size : std::size_t{0}};
}

void ErrorRecord::throw_worker_error(int worker_id) const {
  try {
    throw RemoteError(std::string(type_name_text()), std::string(message_text()), std::string(payload_bytes()));
  } catch (...) {
    throw WorkerError(worker_id, failure_message(worker_id, message_text()));
  }
}

bool heap_reads_as_zeros(std::size_t bytes, std::size_t alignment) noexcept {
  return bytes >= kMappedHeapBytes && alignment <= kHugePageBytes;
}

std::shared_ptr<void> allocate_heap(std::size_t bytes, std::size_t alignment) {
  if (heap_reads_as_zeros(bytes, alignment)) return allocate_mapped(bytes);
  void* memory = nullptr;
  // posix_memalign, not operator new: a failure is reported to us (under AddressSanitizer too)
  // instead of ending the process.
  if (const int error = posix_memalign(&memory, alignment, bytes == 0 ? 1 : bytes); error != 0) {
    throw AllocationError("pasha: cannot allocate " + std::to_string(bytes) + " bytes: " + std::strerror(error));
  }
  return std::shared_ptr<void>(memory, [](void* p) { std::free(p); });
}

}  // namespace pasha::backend
