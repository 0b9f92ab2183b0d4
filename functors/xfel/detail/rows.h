// Where a map's rows go: a buffer per thread and nesting level, reused from train to train, and
// arrays of rows. Internal to functors/xfel.
#ifndef PASHA_FUNCTORS_XFEL_DETAIL_ROWS_H_
#define PASHA_FUNCTORS_XFEL_DETAIL_ROWS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "pasha/core/array.h"

namespace pasha::xfel::detail {

// The buffer one iterate call reads rows into: the calling thread's (in a worker process, the
// worker's), reused from call to call, one per nesting level, so that a map started from inside a
// kernel never overwrites the rows the outer kernel is looking at.
class RowsBuffer {
 public:
  RowsBuffer() noexcept : level_(depth()++) {}
  ~RowsBuffer() { --depth(); }
  RowsBuffer(const RowsBuffer&) = delete;
  RowsBuffer& operator=(const RowsBuffer&) = delete;

  template <class T>
  T* get(std::size_t elements) {
    static_assert(alignof(T) <= alignof(std::max_align_t));
    return static_cast<T*>(bytes(elements * sizeof(T)));
  }

 private:
  struct Buffer {
    std::unique_ptr<std::max_align_t[]> memory;
    std::size_t bytes = 0;
  };
  static std::size_t& depth() noexcept {
    thread_local std::size_t depth = 0;
    return depth;
  }
  void* bytes(std::size_t n) {
    thread_local std::vector<Buffer> buffers;
    if (buffers.size() <= level_) buffers.resize(level_ + 1);
    Buffer& buffer = buffers[level_];
    if (n > buffer.bytes) {
      buffer.memory.reset(new std::max_align_t[(n + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t)]);
      buffer.bytes = n;
    }
    return buffer.memory.get();
  }
  std::size_t level_;
};

// A contiguous heap array of `shape` for one train's rows or a bulk read.
template <class T>
Array<T> heap_array(const Shape& shape) {
  const std::size_t n = shape.num_elements();
  std::shared_ptr<T[]> memory(new T[n == 0 ? 1 : n]);
  T* data = memory.get();
  return Array<T>(std::shared_ptr<void>(memory, data), data, shape, Order::C);
}

inline Shape rows_shape(std::uint64_t count, const std::vector<std::size_t>& entry_shape) {
  Shape shape{static_cast<std::size_t>(count)};
  for (std::size_t e : entry_shape) shape.insert(shape.ndim(), e);
  return shape;
}

}  // namespace pasha::xfel::detail

#endif  // PASHA_FUNCTORS_XFEL_DETAIL_ROWS_H_
