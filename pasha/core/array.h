// pasha::Array<T>: the n-dimensional array handle that pasha allocates and kernels write into.
//
// An Array is a view (data pointer, shape, strides) plus shared ownership of the memory it views.
// Copies are cheap and share one buffer; the memory is released when the last handle to it goes.
// The memory comes from the context that allocated it and is reachable from that context's workers:
// heap memory for serial and thread contexts, memory shared with forked workers for process contexts.
// Writes a worker makes through an Array are visible to the caller once `map` returns.
//
// Axes may carry names (Array::named, the `.axes` option of alloc): a(…) and slicing work as ever,
// a.axis("pulse") finds an axis, pasha::along(a, "pulse") maps along it, alloc_like keeps the names.
// The names live as long as a handle that has them.
//
// A default-constructed or moved-from Array is empty: one axis of length 0, no data, no names.
//
// Thread-safety: like a pointer. Handles may be copied and destroyed concurrently; concurrent writes
// to the same element are the caller's business.
#ifndef PASHA_CORE_ARRAY_H_
#define PASHA_CORE_ARRAY_H_

#include <algorithm>
#include <array>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace pasha {

// Memory layout of an n-d array: C (row-major, last index fastest) or F (column-major, first fastest).
enum class Order { C, F };

// The largest number of dimensions an Array can have.
inline constexpr std::size_t kMaxRank = 8;

// A list of extents: `pasha::Shape{3, 4}`, `pasha::Shape(100)`, or any range of integers.
// Negative extents and more than kMaxRank dimensions throw std::invalid_argument naming the value.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<std::size_t> extents) { assign(extents); }
  template <std::integral I>
  Shape(std::initializer_list<I> extents) { assign(extents); }  // NOLINT: implicit on purpose
  template <std::integral I>
  Shape(I extent) { assign(std::initializer_list<I>{extent}); }  // NOLINT: implicit on purpose
  template <std::ranges::input_range R>
    requires std::integral<std::ranges::range_value_t<R>> && (!std::same_as<std::remove_cvref_t<R>, Shape>)
  Shape(R&& extents) { assign(extents); }  // NOLINT: implicit on purpose

  std::size_t ndim() const noexcept { return ndim_; }
  std::size_t operator[](std::size_t axis) const noexcept { return extents_[axis]; }
  const std::size_t* begin() const noexcept { return extents_.data(); }
  const std::size_t* end() const noexcept { return extents_.data() + ndim_; }
  std::size_t size() const noexcept { return ndim_; }
  // The number of elements (1 for a 0-d shape). Throws std::invalid_argument on overflow.
  std::size_t num_elements() const;

  void insert(std::size_t axis, std::size_t extent);
  void erase(std::size_t axis);

  friend bool operator==(const Shape& a, const Shape& b) {
    return std::ranges::equal(a, b);
  }
  std::string to_string() const;

 private:
  template <class R>
  void assign(const R& extents) {
    for (auto e : extents) {
      if constexpr (std::is_signed_v<decltype(e)>) {
        if (e < 0) throw std::invalid_argument("pasha: negative extent " + std::to_string(e) + " in shape");
      }
      if (ndim_ == kMaxRank) {
        throw std::invalid_argument("pasha: shape has more than " + std::to_string(kMaxRank) + " dimensions");
      }
      extents_[ndim_++] = static_cast<std::size_t>(e);
    }
  }

  std::array<std::size_t, kMaxRank> extents_{};
  std::size_t ndim_ = 0;
};

// Element strides of an n-d array, one per dimension (unused entries are 0).
using Strides = std::array<std::ptrdiff_t, kMaxRank>;

// The shape of a per-worker array of `shape` (alloc's `.per_worker`): a worker axis of length
// `num_workers` added first for C order, last for F order. The one statement of that rule.
Shape with_worker_axis(Shape shape, Order order, int num_workers);

// Names for the axes of an array (xarray's dims): `{"train", "pulse"}`, or any range of strings.
// "" leaves an axis unnamed. Used by Array::named and by the `.axes` option of alloc and alloc_like.
class AxisNames {
 public:
  AxisNames() = default;
  AxisNames(std::initializer_list<std::string_view> names) : names_(names.begin(), names.end()) {}  // NOLINT
  template <std::ranges::input_range R>
    requires std::convertible_to<std::ranges::range_reference_t<R>, std::string_view> &&
             (!std::same_as<std::remove_cvref_t<R>, AxisNames>)
  AxisNames(const R& names) {  // NOLINT: implicit on purpose
    for (auto&& name : names) names_.emplace_back(std::string_view(name));
  }

  bool empty() const noexcept { return names_.empty(); }
  std::size_t size() const noexcept { return names_.size(); }
  const std::string& operator[](std::size_t axis) const { return names_[axis]; }
  const std::vector<std::string>& names() const noexcept { return names_; }

 private:
  std::vector<std::string> names_;
};

namespace detail {

// Strides (in elements) of a contiguous array of the given shape and order. The caller guarantees
// that they fit (a shape checked by contiguous_layout, or part of one).
Strides contiguous_strides(const Shape& shape, Order order) noexcept;

// How an array of `shape` lies in memory: its full shape, strides (in elements) and byte size.
struct Layout {
  Shape shape;
  Strides strides{};
  std::size_t bytes = 0;
};

// A contiguous array of `shape`. Throws std::invalid_argument naming the shape when its byte size or
// one of its strides overflows (byte counts stay within ptrdiff_t, so that pointer arithmetic over
// the whole array is defined; this holds for arrays with a zero extent too).
Layout contiguous_layout(const Shape& shape, std::size_t element_size, Order order);

// An array of `shape` per worker: a worker axis of length num_workers is added (first for C order,
// last for F order), and each worker's slice (contiguous, in `order`) starts `alignment` bytes apart
// at least, on a multiple of `alignment` from the start. Throws like contiguous_layout.
Layout per_worker_layout(const Shape& shape, std::size_t element_size, Order order, int num_workers,
                         std::size_t alignment);

[[noreturn]] void throw_not_zero_dimensional(std::size_t ndim);

// The axis names of an Array: one list per call of Array::named (or alloc with `.axes`), shared by
// the handles made from it, and gone with the last of them. A sub-array finds its list (this one without the sliced axis) with one atomic load
// once the first has asked: the lists of sub-arrays are made once, on demand, and owned by this one.
// Lock-free, so that forked children may use them.
struct AxisNameList {
  AxisNameList() = default;
  AxisNameList(const AxisNameList&) = delete;
  AxisNameList& operator=(const AxisNameList&) = delete;
  ~AxisNameList();

  std::string storage;                              // the names, end to end
  std::array<std::string_view, kMaxRank> names{};  // views of storage
  std::size_t ndim = 0;
  mutable std::array<std::atomic<const AxisNameList*>, kMaxRank> without_axis{};
};

// A new list of `names` (nullptr when every name is ""). Throws std::invalid_argument when a name is
// used twice or there are more than kMaxRank.
std::shared_ptr<const AxisNameList> make_axis_names(const std::vector<std::string_view>& names);
// `list` without axis `axis` (nullptr if no name is left), owned by `list`: made on first use.
const AxisNameList* make_axis_names_without(const AxisNameList* list, std::size_t axis);
// Throws std::invalid_argument unless `names` has one name per axis of an `ndim`-d array.
std::shared_ptr<const AxisNameList> axis_names_for(const AxisNames& names, std::size_t ndim, const char* who);
[[noreturn]] void throw_no_such_axis(const AxisNameList* list, std::string_view name);
// The names alloc gives an array of `ndim` axes named `names` (checked): with "worker" for the worker
// axis of a per-worker array (first for C order, last for F).
AxisNames allocated_axis_names(const AxisNames& names, std::size_t ndim, bool per_worker, Order order);
// The names alloc_like keeps from its prototype's: all of them while the number of axes stays, unless
// a new worker axis would repeat a "worker" the prototype has (a per-worker prototype): then none.
AxisNames inherited_axis_names(const AxisNames& prototype, std::size_t ndim, bool per_worker);

// What without_axis holds for a list whose names would all be gone ("" only): nullptr means "not
// asked yet".
extern const AxisNameList kNoAxisNames;

inline const AxisNameList* axis_names_without(const AxisNameList* list, std::size_t axis) {
  if (list == nullptr) return nullptr;
  if (const AxisNameList* known = list->without_axis[axis].load(std::memory_order_acquire)) {
    return known == &kNoAxisNames ? nullptr : known;
  }
  return detail::make_axis_names_without(list, axis);
}

// Whether the `size` bytes at `bytes` are all zero (a fill value that memory reading as zeros already
// holds: 0, 0.0, but not -0.0).
inline bool all_bytes_zero(const void* bytes, std::size_t size) noexcept {
  const auto* first = static_cast<const unsigned char*>(bytes);
  return std::all_of(first, first + size, [](unsigned char byte) { return byte == 0; });
}

}  // namespace detail

template <class T>
class Array {
  static_assert(std::is_trivially_copyable_v<T>,
                "pasha::Array<T>: T must be trivially copyable (workers may be separate processes)");

 public:
  using value_type = T;
  class iterator;

  // An empty array: one axis of length 0, no data. What a moved-from handle becomes.
  Array() = default;
  Array(const Array&) = default;
  Array& operator=(const Array&) = default;
  Array(Array&& other) noexcept
      : owner_(std::move(other.owner_)),
        data_(other.data_),
        shape_(other.shape_),
        strides_(other.strides_),
        order_(other.order_),
        contiguous_(other.contiguous_),
        names_(other.names_),
        names_owner_(std::move(other.names_owner_)) {
    other.become_empty();
  }
  Array& operator=(Array&& other) noexcept {
    if (this != &other) {
      owner_ = std::move(other.owner_);
      data_ = other.data_;
      shape_ = other.shape_;
      strides_ = other.strides_;
      order_ = other.order_;
      contiguous_ = other.contiguous_;
      names_ = other.names_;
      names_owner_ = std::move(other.names_owner_);
      other.become_empty();
    }
    return *this;
  }

  // Wraps `data`, owned by `owner` (may be empty: then the caller keeps the memory alive), as a
  // contiguous array of the given shape and order. Throws std::invalid_argument when the shape's
  // byte size overflows.
  Array(std::shared_ptr<void> owner, T* data, const Shape& shape, Order order)
      : Array(std::move(owner), data, shape, detail::contiguous_layout(shape, sizeof(T), order).strides, order) {}

  // Wraps `data` with explicit strides (in elements, one per dimension of `shape`); `order` is the
  // order in which operator[] and iteration visit elements.
  Array(std::shared_ptr<void> owner, T* data, const Shape& shape, const Strides& strides, Order order)
      : owner_(std::move(owner)), data_(data), shape_(shape), strides_(strides), order_(order),
        contiguous_(is_contiguous(order)) {}

  // The same view without a share of the ownership: valid while another handle keeps the memory
  // alive, and copying it touches no reference count. What pasha hands kernels for sub-arrays.
  Array unowned() const noexcept {
    Array view;
    view.data_ = data_;
    view.shape_ = shape_;
    view.strides_ = strides_;
    view.order_ = order_;
    view.contiguous_ = contiguous_;
    view.names_ = names_;
    return view;
  }

  // Named axes (xarray's dims). The same view with its axes named: a(2, 5) still indexes it, and
  // a.axis("pulse") tells where an axis is. "" leaves an axis unnamed. Throws std::invalid_argument
  // unless there is one name per axis and no name is used twice.
  Array named(const AxisNames& names) const {
    Array view = *this;
    std::shared_ptr<const detail::AxisNameList> list = detail::axis_names_for(names, ndim(), "pasha::Array::named");
    view.names_ = list.get();
    view.names_owner_ = std::move(list);
    return view;
  }
  bool has_axis_names() const noexcept { return names_ != nullptr; }
  // The name of `axis`, "" when it has none.
  std::string_view axis_name(std::size_t axis) const noexcept {
    return names_ == nullptr ? std::string_view() : names_->names[axis];
  }
  // The axis called `name`. Throws std::invalid_argument naming it and the array's axes when there
  // is none.
  std::size_t axis(std::string_view name) const {
    if (names_ != nullptr && !name.empty()) {
      for (std::size_t a = 0; a < names_->ndim; ++a) {
        if (names_->names[a] == name) return a;
      }
    }
    detail::throw_no_such_axis(names_, name);
  }
  // The names of all axes ("" for unnamed ones), for alloc_like and for printing.
  AxisNames axis_names() const {
    std::vector<std::string_view> names(ndim());
    for (std::size_t a = 0; a < ndim(); ++a) names[a] = axis_name(a);
    return has_axis_names() ? AxisNames(names) : AxisNames();
  }

  std::span<const std::size_t> shape() const noexcept { return {shape_.begin(), shape_.ndim()}; }
  std::span<const std::ptrdiff_t> strides() const noexcept { return {strides_.data(), shape_.ndim()}; }
  std::size_t ndim() const noexcept { return shape_.ndim(); }
  std::size_t size() const noexcept {
    std::size_t n = 1;
    for (std::size_t e : shape_) n *= e;
    return n;
  }
  bool empty() const noexcept { return size() == 0; }
  T* data() const noexcept { return data_; }
  // The layout order in which operator[] and iteration visit elements.
  Order order() const noexcept { return order_; }

  bool c_contiguous() const noexcept { return is_contiguous(Order::C); }
  bool f_contiguous() const noexcept { return is_contiguous(Order::F); }

  // The i-th element in memory order (the array's layout order).
  T& operator[](std::size_t i) const noexcept {
    // Both members are read unconditionally, so that the compiler can hoist them out of a kernel's
    // loop and vectorize it (a load inside the branch would be re-done every iteration).
    T* const data = data_;
    const bool contiguous = contiguous_;
    if (contiguous) [[likely]] return data[i];
    return *element_at_linear(i);
  }

  // A 0-d array (what a kernel gets along a 1-d array) converts to a reference to its element, so that
  // `3 * v` works on it. Throws std::logic_error for an array of any other rank.
  operator T&() const {  // NOLINT: implicit on purpose
    if (ndim() != 0) [[unlikely]] detail::throw_not_zero_dimensional(ndim());
    return *data_;
  }

  // The element at a multi-index; one index per dimension.
  template <std::integral... I>
  T& operator()(I... index) const noexcept {
    const std::size_t idx[] = {static_cast<std::size_t>(index)..., 0};
    std::ptrdiff_t offset = 0;
    for (std::size_t axis = 0; axis < sizeof...(I); ++axis) {
      offset += static_cast<std::ptrdiff_t>(idx[axis]) * strides_[axis];
    }
    return data_[offset];
  }

  // The sub-array at position `i` along `axis`: one dimension fewer (and that axis's name fewer),
  // sharing this array's memory.
  Array slice(std::size_t axis, std::size_t i) const {
    Array sub = *this;
    sub.data_ = data_ + static_cast<std::ptrdiff_t>(i) * strides_[axis];
    sub.shape_.erase(axis);
    std::copy(strides_.begin() + axis + 1, strides_.begin() + ndim(), sub.strides_.begin() + axis);
    sub.contiguous_ = sub.is_contiguous(sub.order_);
    sub.names_ = detail::axis_names_without(names_, axis);
    return sub;
  }

  iterator begin() const noexcept { return iterator(this, 0); }
  iterator end() const noexcept { return iterator(this, size()); }

  // Iterates over elements in memory order.
  class iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using reference = T&;

    iterator() = default;
    T& operator*() const noexcept { return (*array_)[i_]; }
    T& operator[](difference_type n) const noexcept { return (*array_)[i_ + n]; }
    iterator& operator++() noexcept { ++i_; return *this; }
    iterator operator++(int) noexcept { auto old = *this; ++i_; return old; }
    iterator& operator--() noexcept { --i_; return *this; }
    iterator operator--(int) noexcept { auto old = *this; --i_; return old; }
    iterator& operator+=(difference_type n) noexcept { i_ += n; return *this; }
    iterator& operator-=(difference_type n) noexcept { i_ -= n; return *this; }
    friend iterator operator+(iterator it, difference_type n) noexcept { return it += n; }
    friend iterator operator+(difference_type n, iterator it) noexcept { return it += n; }
    friend iterator operator-(iterator it, difference_type n) noexcept { return it -= n; }
    friend difference_type operator-(const iterator& a, const iterator& b) noexcept {
      return static_cast<difference_type>(a.i_) - static_cast<difference_type>(b.i_);
    }
    friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.i_ == b.i_; }
    friend auto operator<=>(const iterator& a, const iterator& b) noexcept { return a.i_ <=> b.i_; }

   private:
    friend class Array;
    iterator(const Array* array, std::size_t i) : array_(array), i_(i) {}
    const Array* array_ = nullptr;
    std::size_t i_ = 0;
  };

 private:
  void become_empty() noexcept {
    owner_.reset();
    data_ = nullptr;
    shape_ = Shape{std::size_t{0}};
    strides_ = {};
    order_ = Order::C;
    contiguous_ = true;
    names_ = nullptr;
    names_owner_.reset();
  }

  bool is_contiguous(Order order) const noexcept {
    auto expected = detail::contiguous_strides(shape_, order);
    for (std::size_t axis = 0; axis < ndim(); ++axis) {
      if (shape_[axis] > 1 && strides_[axis] != expected[axis]) return false;
    }
    return true;
  }

  // Out of line, so that loops over contiguous arrays stay simple enough to vectorize.
  [[gnu::noinline, gnu::cold]] T* element_at_linear(std::size_t i) const noexcept {
    std::ptrdiff_t offset = 0;
    const std::size_t n = ndim();
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t axis = order_ == Order::C ? n - 1 - k : k;
      offset += static_cast<std::ptrdiff_t>(i % shape_[axis]) * strides_[axis];
      i /= shape_[axis];
    }
    return data_ + offset;
  }

  std::shared_ptr<void> owner_;
  T* data_ = nullptr;
  Shape shape_{std::size_t{0}};
  std::array<std::ptrdiff_t, kMaxRank> strides_{};
  Order order_ = Order::C;
  bool contiguous_ = true;
  const detail::AxisNameList* names_ = nullptr;  // this view's names (a sub-list of names_owner_'s)
  std::shared_ptr<const detail::AxisNameList> names_owner_;  // empty in unowned views
};

}  // namespace pasha

#endif  // PASHA_CORE_ARRAY_H_
