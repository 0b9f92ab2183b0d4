#include "pasha/array.h"

#include <limits>

namespace pasha {

std::size_t Shape::num_elements() const {
  std::size_t n = 1;
  for (std::size_t e : *this) {
    if (e != 0 && n > std::numeric_limits<std::size_t>::max() / e) {
      throw std::invalid_argument("pasha: shape " + to_string() + " has more elements than std::size_t can count");
    }
    n *= e;
  }
  return n;
}

void Shape::insert(std::size_t axis, std::size_t extent) {
  if (ndim_ == kMaxRank) {
    throw std::invalid_argument("pasha: shape " + to_string() + " cannot take another dimension (at most " +
                                std::to_string(kMaxRank) + ")");
  }
  std::copy_backward(extents_.begin() + axis, extents_.begin() + ndim_, extents_.begin() + ndim_ + 1);
  extents_[axis] = extent;
  ++ndim_;
}

void Shape::erase(std::size_t axis) {
  std::copy(extents_.begin() + axis + 1, extents_.begin() + ndim_, extents_.begin() + axis);
  --ndim_;
}

std::string Shape::to_string() const {
  std::string s = "(";
  for (std::size_t axis = 0; axis < ndim_; ++axis) {
    if (axis > 0) s += ", ";
    s += std::to_string(extents_[axis]);
  }
  if (ndim_ == 1) s += ",";
  return s + ")";
}

namespace detail {

std::array<std::ptrdiff_t, kMaxRank> contiguous_strides(const Shape& shape, Order order) {
  std::array<std::ptrdiff_t, kMaxRank> strides{};
  std::ptrdiff_t stride = 1;
  const std::size_t n = shape.ndim();
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t axis = order == Order::C ? n - 1 - k : k;
    strides[axis] = stride;
    stride *= static_cast<std::ptrdiff_t>(shape[axis]);
  }
  return strides;
}

std::size_t checked_byte_size(const Shape& shape, std::size_t element_size) {
  const std::size_t n = shape.num_elements();
  // Keep byte counts within ptrdiff_t so that pointer arithmetic over the whole array is defined.
  const std::size_t limit = static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max());
  if (element_size != 0 && n > limit / element_size) {
    throw std::invalid_argument("pasha: shape " + shape.to_string() + " of " + std::to_string(element_size) +
                                "-byte elements is too large: its byte size overflows");
  }
  return n * element_size;
}

}  // namespace detail
}  // namespace pasha
