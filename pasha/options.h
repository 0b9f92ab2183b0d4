// Options of alloc, alloc_like and map. All are aggregates, so designated initializers work:
//   ctx.alloc<double>({3, 4}, {.order = pasha::Order::F, .fill = 42, .per_worker = true});
//   ctx.map(kernel, input, {.schedule = pasha::Schedule::dynamic, .chunk = 1024});
#ifndef PASHA_OPTIONS_H_
#define PASHA_OPTIONS_H_

#include <concepts>
#include <cstddef>
#include <initializer_list>
#include <optional>
#include <ranges>
#include <type_traits>
#include <utility>

#include "pasha/array.h"

namespace pasha {

// Options of Context::alloc<T>. Without `fill` the contents are unspecified (like np.empty).
// `per_worker` adds a worker axis of length num_workers(): first for C order, last for F order.
template <class T>
struct AllocOptions {
  Order order = Order::C;
  std::optional<T> fill;
  bool per_worker = false;
};

// A shape that may be absent: `.shape = {3, 4}` in AllocLikeOptions.
class ShapeOverride {
 public:
  ShapeOverride() = default;
  ShapeOverride(const Shape& shape) : shape_(shape) {}  // NOLINT: implicit on purpose
  ShapeOverride(std::initializer_list<std::size_t> extents) : shape_(Shape(extents)) {}
  template <std::integral I>
  ShapeOverride(std::initializer_list<I> extents) : shape_(Shape(extents)) {}  // NOLINT
  template <std::integral I>
  ShapeOverride(I extent) : shape_(Shape(extent)) {}  // NOLINT
  // Any range of integers, such as a std::vector<std::size_t> computed at run time.
  template <std::ranges::input_range R>
    requires std::integral<std::ranges::range_value_t<R>> && (!std::same_as<std::remove_cvref_t<R>, Shape>)
  ShapeOverride(R&& extents) : shape_(Shape(std::forward<R>(extents))) {}  // NOLINT

  bool has_value() const noexcept { return shape_.has_value(); }
  const Shape& operator*() const { return *shape_; }

 private:
  std::optional<Shape> shape_;
};

// Options of Context::alloc_like: each member left out keeps the prototype's value (shape, order);
// the element type is kept unless alloc_like<U> names another.
template <class T>
struct AllocLikeOptions {
  ShapeOverride shape;
  std::optional<Order> order;
  std::optional<T> fill;
  bool per_worker = false;
};

// How a map hands elements to workers.
enum class Schedule {
  // Worker w gets one contiguous share, sizes differing by at most one. The default.
  static_shares,
  // Workers take chunks of `chunk` consecutive elements from a shared counter until none are left;
  // for kernels whose cost varies along the index. Needs an indexed functor (see pasha/functor.h).
  dynamic,
};

struct MapOptions {
  Schedule schedule = Schedule::static_shares;
  // Elements per chunk for Schedule::dynamic; 0 picks one (about 16 chunks per worker).
  std::size_t chunk = 0;
};

namespace detail {
// The element type of alloc_like<U>(prototype of T): U, or T when U is void.
template <class U, class T>
using alloc_like_t = std::conditional_t<std::is_void_v<U>, T, U>;
}  // namespace detail

}  // namespace pasha

#endif  // PASHA_OPTIONS_H_
