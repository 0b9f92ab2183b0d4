// Heap memory for contexts whose workers share the caller's address space. Internal to pasha.
#ifndef PASHA_DETAIL_HEAP_MEMORY_H_
#define PASHA_DETAIL_HEAP_MEMORY_H_

#include <cstddef>
#include <memory>

namespace pasha::detail {

// `bytes` bytes aligned to `alignment`, freed when the last copy of the pointer goes.
// Throws pasha::AllocationError (a std::bad_alloc naming the size) when the memory cannot be had.
std::shared_ptr<void> allocate_heap(std::size_t bytes, std::size_t alignment);

}  // namespace pasha::detail

#endif  // PASHA_DETAIL_HEAP_MEMORY_H_
