#include "pasha/detail/heap_memory.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "pasha/errors.h"

namespace pasha::detail {

std::shared_ptr<void> allocate_heap(std::size_t bytes, std::size_t alignment) {
  void* memory = nullptr;
  // posix_memalign, not operator new: a failure is reported to us (and under AddressSanitizer, too)
  // instead of ending the process.
  if (const int error = posix_memalign(&memory, alignment, bytes == 0 ? 1 : bytes); error != 0) {
    throw AllocationError("pasha: cannot allocate " + std::to_string(bytes) + " bytes: " + std::strerror(error));
  }
  return std::shared_ptr<void>(memory, [](void* p) { std::free(p); });
}

}  // namespace pasha::detail
