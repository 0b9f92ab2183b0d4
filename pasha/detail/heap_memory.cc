#include "pasha/detail/heap_memory.h"

#include <new>

namespace pasha::detail {

std::shared_ptr<void> allocate_heap(std::size_t bytes, std::size_t alignment) {
  const std::align_val_t align{alignment};
  void* memory = ::operator new(bytes == 0 ? 1 : bytes, align);
  return std::shared_ptr<void>(memory, [align](void* p) { ::operator delete(p, align); });
}

}  // namespace pasha::detail
