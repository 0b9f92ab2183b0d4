#include "pasha/core/array.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <vector>


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

Shape with_worker_axis(Shape shape, Order order, int num_workers) {
  shape.insert(order == Order::C ? 0 : shape.ndim(), static_cast<std::size_t>(num_workers));
  return shape;
}

namespace detail {

Strides contiguous_strides(const Shape& shape, Order order) noexcept {
  Strides strides{};
  std::size_t stride = 1;  // unsigned: a caller's unchecked shape wraps instead of overflowing
  const std::size_t n = shape.ndim();
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t axis = order == Order::C ? n - 1 - k : k;
    strides[axis] = static_cast<std::ptrdiff_t>(stride);
    stride *= shape[axis];
  }
  return strides;
}

namespace {

constexpr std::size_t kMaxBytes = static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max());

[[noreturn]] void throw_too_large(const Shape& shape, std::size_t element_size) {
  throw std::invalid_argument("pasha: shape " + shape.to_string() + " of " + std::to_string(element_size) +
                              "-byte elements is too large: its byte size or a stride overflows");
}

// a * b, or throw_too_large when the product exceeds kMaxBytes.
std::size_t checked_product(std::size_t a, std::size_t b, const Shape& shape, std::size_t element_size) {
  if (b != 0 && a > kMaxBytes / b) throw_too_large(shape, element_size);
  return a * b;
}

// The byte stride of every axis of a contiguous `shape` (and the bytes of the whole), checked: with a
// zero extent the array is empty, but its strides are still products of the other extents.
void check_strides(const Shape& shape, std::size_t element_size) {
  std::size_t bytes = element_size;
  for (std::size_t extent : shape) bytes = checked_product(bytes, std::max<std::size_t>(extent, 1), shape, element_size);
}

}  // namespace

Layout contiguous_layout(const Shape& shape, std::size_t element_size, Order order) {
  check_strides(shape, element_size);
  return {shape, contiguous_strides(shape, order), checked_product(shape.num_elements(), element_size, shape, element_size)};
}

Layout per_worker_layout(const Shape& shape, std::size_t element_size, Order order, int num_workers,
                         std::size_t alignment) {
  const Shape full = with_worker_axis(shape, order, num_workers);
  const std::size_t worker_axis = order == Order::C ? 0 : shape.ndim();
  check_strides(full, element_size);
  const std::size_t slice_bytes = checked_product(shape.num_elements(), element_size, full, element_size);
  // Slices start on multiples of lcm(alignment, element_size): aligned, and a whole number of elements.
  const std::size_t unit = std::lcm(alignment, element_size);
  const std::size_t slice_stride = (slice_bytes + unit - 1) / unit * unit;
  Layout layout{full, contiguous_strides(full, order),
                checked_product(slice_stride, static_cast<std::size_t>(num_workers), full, element_size)};
  layout.strides[worker_axis] = static_cast<std::ptrdiff_t>(slice_stride / element_size);
  return layout;
}

namespace {

std::string quoted_list(const std::vector<std::string_view>& names) {
  std::string s = "(";
  for (std::size_t a = 0; a < names.size(); ++a) {
    if (a > 0) s += ", ";
    s += names[a].empty() ? std::string("<unnamed>") : "\"" + std::string(names[a]) + "\"";
  }
  return s + ")";
}

}  // namespace

AxisNameList::~AxisNameList() {
  for (const auto& child : without_axis) {
    const AxisNameList* list = child.load(std::memory_order_acquire);
    if (list != nullptr && list != &kNoAxisNames) delete list;
  }
}

namespace {

// A new list of `names`, or null when every name is ""; checked as make_axis_names says.
std::unique_ptr<AxisNameList> new_axis_names(const std::vector<std::string_view>& names) {
  if (names.size() > kMaxRank) {
    throw std::invalid_argument("pasha: " + std::to_string(names.size()) + " axis names, but an array has at most " +
                                std::to_string(kMaxRank) + " axes");
  }
  if (std::all_of(names.begin(), names.end(), [](std::string_view n) { return n.empty(); })) return nullptr;
  for (std::size_t a = 0; a < names.size(); ++a) {
    for (std::size_t b = 0; b < a; ++b) {
      if (!names[a].empty() && names[a] == names[b]) {
        throw std::invalid_argument("pasha: axis name \"" + std::string(names[a]) + "\" is used twice in " +
                                    quoted_list(names));
      }
    }
  }
  auto list = std::make_unique<AxisNameList>();
  list->ndim = names.size();
  for (std::string_view name : names) list->storage += name;
  std::size_t offset = 0;
  for (std::size_t a = 0; a < names.size(); ++a) {
    list->names[a] = std::string_view(list->storage).substr(offset, names[a].size());
    offset += names[a].size();
  }
  return list;
}

}  // namespace

std::shared_ptr<const AxisNameList> make_axis_names(const std::vector<std::string_view>& names) {
  return new_axis_names(names);
}

const AxisNameList* make_axis_names_without(const AxisNameList* list, std::size_t axis) {
  std::vector<std::string_view> rest(list->names.begin(), list->names.begin() + static_cast<std::ptrdiff_t>(list->ndim));
  rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(axis));
  std::unique_ptr<AxisNameList> made = new_axis_names(rest);
  const AxisNameList* candidate = made ? made.get() : &kNoAxisNames;
  // Racing threads make a list each: the first stored is kept, owned by `list`; the others go.
  const AxisNameList* stored = nullptr;
  if (list->without_axis[axis].compare_exchange_strong(stored, candidate, std::memory_order_acq_rel)) {
    static_cast<void>(made.release());
    stored = candidate;
  }
  return stored == &kNoAxisNames ? nullptr : stored;
}


const AxisNameList kNoAxisNames{};

AxisNames inherited_axis_names(const AxisNames& prototype, std::size_t ndim, bool per_worker) {
  if (prototype.size() != ndim) return {};
  if (per_worker && std::find(prototype.names().begin(), prototype.names().end(), "worker") != prototype.names().end()) {
    return {};
  }
  return prototype;
}



std::shared_ptr<const AxisNameList> axis_names_for(const AxisNames& names, std::size_t ndim, const char* who) {
  if (names.size() != ndim) {
    throw std::invalid_argument(std::string(who) + ": " + std::to_string(names.size()) + " axis names for a " +
                                std::to_string(ndim) + "-d array");
  }
  return make_axis_names(std::vector<std::string_view>(names.names().begin(), names.names().end()));
}

AxisNames allocated_axis_names(const AxisNames& names, std::size_t ndim, bool per_worker, Order order) {
  axis_names_for(names, ndim, "pasha::alloc (.axes)");
  if (!per_worker) return names;
  std::vector<std::string> all = names.names();
  all.insert(order == Order::C ? all.begin() : all.end(), "worker");
  return AxisNames(all);
}

void throw_no_such_axis(const AxisNameList* list, std::string_view name) {
  if (name.empty()) throw std::invalid_argument("pasha: an axis name cannot be empty (\"\" marks an unnamed axis)");
  if (list == nullptr) {
    throw std::invalid_argument("pasha: no axis named \"" + std::string(name) + "\": the array's axes have no names");
  }
  throw std::invalid_argument("pasha: no axis named \"" + std::string(name) + "\"; the array's axes are " +
                              quoted_list(std::vector<std::string_view>(list->names.begin(),
                                                                        list->names.begin() + list->ndim)));
}

void throw_not_zero_dimensional(std::size_t ndim) {
  throw std::logic_error("pasha::Array: only a 0-d array converts to its element; this one is " +
                         std::to_string(ndim) + "-d");
}

}  // namespace detail
}  // namespace pasha
