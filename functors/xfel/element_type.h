// The element types the XFEL reader reads into (and finds stored), as a runtime tag: what
// DataCollection::stored_type reports, for code that picks KeyData<T>'s T at run time (a binding).
#ifndef PASHA_FUNCTORS_XFEL_ELEMENT_TYPE_H_
#define PASHA_FUNCTORS_XFEL_ELEMENT_TYPE_H_

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace pasha::xfel {

enum class ElementType { i8, u8, i16, u16, i32, u32, i64, u64, f32, f64 };

template <class T>
inline constexpr bool kIsReadable = std::is_arithmetic_v<T> && !std::is_same_v<T, bool>;

template <class T>
constexpr ElementType element_type_of() {
  static_assert(kIsReadable<T>, "pasha::xfel: data can be read as integer or floating-point types only");
  if constexpr (std::is_floating_point_v<T>) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "pasha::xfel: float or double only");
    return sizeof(T) == 4 ? ElementType::f32 : ElementType::f64;
  } else if constexpr (std::is_signed_v<T>) {
    return sizeof(T) == 1 ? ElementType::i8 : sizeof(T) == 2 ? ElementType::i16 : sizeof(T) == 4 ? ElementType::i32 : ElementType::i64;
  } else {
    return sizeof(T) == 1 ? ElementType::u8 : sizeof(T) == 2 ? ElementType::u16 : sizeof(T) == 4 ? ElementType::u32 : ElementType::u64;
  }
}

inline constexpr std::size_t kNumElementTypes = 10;

// The bytes of one element of `type`.
constexpr std::size_t element_size(ElementType type) {
  switch (type) {
    case ElementType::i8:
    case ElementType::u8:
      return 1;
    case ElementType::i16:
    case ElementType::u16:
      return 2;
    case ElementType::i32:
    case ElementType::u32:
    case ElementType::f32:
      return 4;
    case ElementType::i64:
    case ElementType::u64:
    case ElementType::f64:
      return 8;
  }
  return 0;
}

// "uint16", "float32", ... (numpy's names).
constexpr const char* element_type_name(ElementType type) {
  switch (type) {
    case ElementType::i8: return "int8";
    case ElementType::u8: return "uint8";
    case ElementType::i16: return "int16";
    case ElementType::u16: return "uint16";
    case ElementType::i32: return "int32";
    case ElementType::u32: return "uint32";
    case ElementType::i64: return "int64";
    case ElementType::u64: return "uint64";
    case ElementType::f32: return "float32";
    case ElementType::f64: return "float64";
  }
  return "unknown";
}

// Calls `f.template operator()<T>()` with T the C++ type of `type` (for code that picks a template
// argument at run time, such as KeyData<T> in a binding) and returns what it returns.
template <class F>
decltype(auto) visit_element_type(ElementType type, F&& f) {
  switch (type) {
    case ElementType::i8: return f.template operator()<std::int8_t>();
    case ElementType::u8: return f.template operator()<std::uint8_t>();
    case ElementType::i16: return f.template operator()<std::int16_t>();
    case ElementType::u16: return f.template operator()<std::uint16_t>();
    case ElementType::i32: return f.template operator()<std::int32_t>();
    case ElementType::u32: return f.template operator()<std::uint32_t>();
    case ElementType::i64: return f.template operator()<std::int64_t>();
    case ElementType::u64: return f.template operator()<std::uint64_t>();
    case ElementType::f32: return f.template operator()<float>();
    case ElementType::f64: break;
  }
  return f.template operator()<double>();
}

}  // namespace pasha::xfel

#endif  // PASHA_FUNCTORS_XFEL_ELEMENT_TYPE_H_
