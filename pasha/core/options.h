// Options of alloc, alloc_like and map. All are aggregates, so designated initializers work:
//   ctx.alloc<double>({3, 4}, {.order = pasha::Order::F, .fill = 42, .per_worker = true});
//   ctx.map(kernel, input, {.schedule = pasha::Schedule::dynamic, .chunk = 1024});
#ifndef PASHA_CORE_OPTIONS_H_
#define PASHA_CORE_OPTIONS_H_

#include <chrono>
#include <concepts>
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <optional>
#include <ranges>
#include <type_traits>
#include <utility>
#include <vector>

#include "pasha/core/array.h"

namespace pasha {

// Options of Context::alloc<T>. Without `fill` the contents are unspecified (like np.empty).
// `per_worker` adds a worker axis of length num_workers(): first for C order, last for F order.
// `axes` names the axes of `shape` (Array::named); a per-worker array's worker axis is then named
// "worker".
template <class T>
struct AllocOptions {
  Order order = Order::C;
  std::optional<T> fill;
  bool per_worker = false;
  AxisNames axes;
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

// Options of Context::alloc_like: each member left out keeps the prototype's value (shape, order,
// axis names; the names only while the number of axes stays); the element type is kept unless
// alloc_like<U> names another.
template <class T>
struct AllocLikeOptions {
  ShapeOverride shape;
  std::optional<Order> order;
  std::optional<T> fill;
  bool per_worker = false;
  AxisNames axes;
};

// The arrays a map's kernels write (MapOptions::writes), named by the memory they view. For contexts
// that copy results between address spaces that share no memory (an MpiContext across nodes), which
// then copy only these. Made by pasha::writes.
class WrittenArrays {
 public:
  // Not said: a context assumes any array may be written.
  WrittenArrays() = default;

  // The arrays whose memory is [first, last) for each span: for bindings whose arrays are not
  // pasha::Arrays (numpy's).
  static WrittenArrays of_memory(std::vector<std::pair<const void*, const void*>> spans) {
    WrittenArrays written;
    written.said_ = true;
    written.spans_ = std::move(spans);
    return written;
  }

  bool said() const noexcept { return said_; }
  // Whether the memory [begin, end) holds elements of an array named here.
  bool includes(const void* begin, const void* end) const noexcept {
    const auto* b = static_cast<const unsigned char*>(begin);
    const auto* e = static_cast<const unsigned char*>(end);
    for (const auto& [first, last] : spans_) {
      if (static_cast<const unsigned char*>(first) < e && b < static_cast<const unsigned char*>(last)) return true;
    }
    return false;
  }

 private:
  template <class... T>
  friend WrittenArrays writes(const Array<T>&... arrays);
  bool said_ = false;
  std::vector<std::pair<const void*, const void*>> spans_;  // [first byte, past the last) of each array
};

// The memory an array's elements lie in: from its first element to past its last.
template <class T>
std::pair<const void*, const void*> memory_span(const Array<T>& array) {
  if (array.empty()) return {array.data(), array.data()};
  std::ptrdiff_t last = 0;
  for (std::size_t axis = 0; axis < array.ndim(); ++axis) {
    last += static_cast<std::ptrdiff_t>(array.shape()[axis] - 1) * array.strides()[axis];
  }
  return {array.data(), array.data() + last + 1};
}

// The arrays a map writes, for MapOptions::writes: pasha::writes(out, partial); pasha::writes() says
// that it writes none that a context would copy back.
template <class... T>
WrittenArrays writes(const Array<T>&... arrays) {
  WrittenArrays written;
  written.said_ = true;
  (written.spans_.push_back(memory_span(arrays)), ...);
  return written;
}

// How a map hands elements to workers.
enum class Schedule {
  // Worker w gets one contiguous share, sizes differing by at most one. The default.
  static_shares,
  // Workers take chunks of `chunk` consecutive elements from a shared counter until none are left;
  // for kernels whose cost varies along the index. Needs an indexed functor (see pasha/core/functor.h).
  dynamic,
};

struct MapOptions {
  Schedule schedule = Schedule::static_shares;
  // Elements per chunk for Schedule::dynamic; 0 picks one (about 16 chunks per worker).
  std::size_t chunk = 0;
  // Progress on stderr, for long maps: elements done of the total, the rate and the time left; a
  // live bar when stderr is a terminal, otherwise a line every `progress_every`, and a last line when
  // the map ends. Elements are counted as the chunks that cancellation checks between (pasha/core/detail/
  // map_job.h) finish, in memory every worker reaches, so the count is right in every context. Off by
  // default, and then it costs nothing. `progress_every` is taken between 1 ms and a year (so
  // milliseconds::max() means "the last line only").
  bool progress = false;
  std::chrono::milliseconds progress_every{5000};
  // Called on the calling thread while it waits for the workers, about every 100 ms; an exception
  // from it stops the workers as a failure does, and map throws it once they have stopped. For an
  // embedding that must notice signals during a long map (the Python package raises
  // KeyboardInterrupt from it on Ctrl-C). It must not call pasha. Workers that are threads stop at
  // their next look at the cancel flag, worker processes are killed at once.
  std::function<void()> interrupt_check;
  // The arrays the kernels write, when a context copies results between address spaces (an
  // MpiContext across nodes makes only these whole after the map): `.writes = pasha::writes(out)`.
  // Left out, every array such a context can make whole is. Other contexts ignore it.
  WrittenArrays writes;
};

namespace detail {
// The element type of alloc_like<U>(prototype of T): U, or T when U is void.
template <class U, class T>
using alloc_like_t = std::conditional_t<std::is_void_v<U>, T, U>;

// What alloc_like takes as a prototype (numpy's `like=`): a pasha::Array, or a contiguous sized
// range of trivially copyable elements (std::vector, std::span, std::array, a C array), which is 1-d.
template <class P>
struct ArrayLike : std::false_type {};
template <class T>
struct ArrayLike<Array<T>> : std::true_type {
  using element_type = T;
  static Shape shape(const Array<T>& a) { return Shape(a.shape()); }
  static Order order(const Array<T>& a) { return a.f_contiguous() && !a.c_contiguous() ? Order::F : a.order(); }
  static AxisNames axes(const Array<T>& a) { return a.axis_names(); }
};
template <class R>
  requires(std::ranges::contiguous_range<R> && std::ranges::sized_range<R> &&
           std::is_trivially_copyable_v<std::ranges::range_value_t<R>> &&
           !std::is_array_v<std::ranges::range_value_t<R>>)
struct ArrayLike<R> : std::true_type {
  using element_type = std::ranges::range_value_t<R>;
  static Shape shape(const R& r) { return Shape(static_cast<std::size_t>(std::ranges::size(r))); }
  static Order order(const R&) { return Order::C; }
  static AxisNames axes(const R&) { return {}; }
};

// The element type of an array-like prototype; for anything else a placeholder, so that alloc_like
// reaches its static_assert (which says what a prototype may be) instead of failing overload
// resolution.
struct NotArrayLike {};
struct ArrayLikePlaceholder {
  using element_type = NotArrayLike;
};
template <class P>
using like_element_t = typename std::conditional_t<ArrayLike<P>::value, ArrayLike<P>,
                                                   ArrayLikePlaceholder>::element_type;
}  // namespace detail

}  // namespace pasha

#endif  // PASHA_CORE_OPTIONS_H_
