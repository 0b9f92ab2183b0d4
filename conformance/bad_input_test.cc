// The bad input table: every kind of bad argument gets a clear exception that names what was wrong,
// in every context, and leaves the context usable.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <new>
#include <ranges>
#include <stdexcept>
#include <string>
#include <vector>

#include "conformance/pasha_contexts.h"
#include "pasha/pasha.h"

namespace pasha {
namespace {

using ::testing::HasSubstr;

template <class F>
std::string InvalidArgumentMessage(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  ADD_FAILURE() << "no std::invalid_argument";
  return {};
}

TEST(BadInput, ZeroOrNegativeWorkerCountsNameTheCount) {
  for (int bad : {0, -1, -1000}) {
    EXPECT_THAT(InvalidArgumentMessage([&] { ThreadContext context(bad); }), HasSubstr(std::to_string(bad)));
    EXPECT_THAT(InvalidArgumentMessage([&] { ProcessContext context(bad); }), HasSubstr(std::to_string(bad)));
  }
}

TEST(BadInput, HugeWorkerCountsNameTheCountAndTheLimit) {
  for (int bad : {kMaxWorkers + 1, 1 << 30}) {
    const std::string message = InvalidArgumentMessage([&] { ProcessContext context(bad); });
    EXPECT_THAT(message, HasSubstr(std::to_string(bad)));
    EXPECT_THAT(message, HasSubstr(std::to_string(kMaxWorkers)));
    EXPECT_THAT(InvalidArgumentMessage([&] { ThreadContext context(bad); }), HasSubstr(std::to_string(bad)));
  }
}

TEST(BadInput, ShapesWhoseByteSizeOverflowsNameTheShape) {
  for (const std::string& name : conformance::context_kind_names()) {
    auto context = make_context(name);
    const std::size_t big = std::size_t{1} << 33;
    EXPECT_THAT(InvalidArgumentMessage([&] { context->alloc<double>({big, big}); }), HasSubstr(std::to_string(big)))
        << name;
    EXPECT_THAT(InvalidArgumentMessage([&] { context->alloc<std::int64_t>({std::size_t{1} << 61}); }),
                HasSubstr("overflow"))
        << name;
    EXPECT_THAT(InvalidArgumentMessage([&] { context->alloc<char>({-1}); }), HasSubstr("-1")) << name;
  }
}

TEST(BadInput, AllocLargerThanMemoryIsBadAllocNotACrash) {
  for (const std::string& name : conformance::context_kind_names()) {
    auto context = make_context(name);
    EXPECT_THROW(context->alloc<double>({std::size_t{1} << 48}), std::bad_alloc) << name;
    auto small = context->alloc<int>(4, {.fill = 1});  // still usable
    EXPECT_EQ(small[3], 1);
  }
}

TEST(BadInput, AnUnknownContextNameIsNamed) {
  EXPECT_THAT(InvalidArgumentMessage([] { make_context("thread"); }), HasSubstr("\"thread\""));
  EXPECT_THAT(InvalidArgumentMessage([] { set_default_context("", 2); }), HasSubstr("\"\""));
}

TEST(BadInput, AlongWithAnAxisOutOfRangeNamesTheAxis) {
  SerialContext context;
  auto cube = context.alloc<float>({2, 3, 4});
  EXPECT_THAT(InvalidArgumentMessage([&] { along(cube, 3); }), HasSubstr("axis 3"));
  EXPECT_THAT(InvalidArgumentMessage([&] { along(cube, -4); }), HasSubstr("axis -4"));
  // Unsigned axes, as computed from ndim(), are checked as they are, not cut to an int.
  EXPECT_THAT(InvalidArgumentMessage([&] { along(cube, SIZE_MAX); }), HasSubstr("axis 18446744073709551615"));
  EXPECT_THAT(InvalidArgumentMessage([&] { along(cube, std::size_t{1} << 32); }), HasSubstr("axis 4294967296"));
  EXPECT_THAT(InvalidArgumentMessage([&] { along(cube, cube.ndim() - 4); }), HasSubstr("out of range"));
  EXPECT_EQ(along(cube, cube.ndim() - 1).axis(), 2u);
  EXPECT_EQ(along(cube, std::int64_t{-3}).axis(), 0u);
  // Other ways of naming an axis number still work: characters, and enums of axes.
  enum Axis { kFirst, kSecond };
  EXPECT_EQ(along(cube, kSecond).axis(), 1u);
  EXPECT_EQ(along(cube, char{2}).axis(), 2u);
  EXPECT_THAT(InvalidArgumentMessage([&] { along(cube, char{9}); }), HasSubstr("axis 9"));
  auto scalar = context.alloc<float>({});
  EXPECT_THROW(context.map([](int, std::size_t, float) {}, scalar), std::invalid_argument);
}

TEST(BadInput, ShapesWithAZeroExtentWhoseStridesOverflowNameTheShape) {
  for (const std::string& name : conformance::context_kind_names()) {
    auto context = make_context(name);
    const std::size_t big = std::size_t{1} << 40;
    const std::string message = InvalidArgumentMessage([&] { context->alloc<char>({std::size_t{0}, big, big}); });
    EXPECT_THAT(message, HasSubstr("(0, " + std::to_string(big) + ", " + std::to_string(big) + ")")) << name;
    EXPECT_THAT(InvalidArgumentMessage([&] { context->alloc<char>({big, big}, {.per_worker = true}); }),
                HasSubstr(std::to_string(big)))
        << name;
    EXPECT_EQ(context->alloc<char>({std::size_t{0}, big}).size(), 0u) << name;  // empty, strides fit
  }
}

}  // namespace
}  // namespace pasha
