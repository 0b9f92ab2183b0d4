// The bad input table: every kind of bad argument gets a clear exception that names what was wrong,
// in every context, and leaves the context usable.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <new>
#include <ranges>
#include <stdexcept>
#include <string>
#include <vector>

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

const char* const kContextNames[] = {"serial", "threads", "processes"};

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
  for (const char* name : kContextNames) {
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
  for (const char* name : kContextNames) {
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
  auto scalar = context.alloc<float>({});
  EXPECT_THROW(context.map([](int, std::size_t, float) {}, scalar), std::invalid_argument);
}

// A functor that returns `shares` shares whatever it is asked for, each of one element.
struct FixedSplitFunctor {
  int shares;
  std::vector<IndexRange> split(int) const {
    std::vector<IndexRange> result;
    for (int s = 0; s < shares; ++s) result.push_back({static_cast<std::size_t>(s), static_cast<std::size_t>(s) + 1});
    return result;
  }
  template <class Visit>
  void iterate(const IndexRange& share, Visit&& visit) const {
    for (std::size_t i = share.begin; i < share.end; ++i) visit(i);
  }
};

TEST(BadInput, AFunctorSplittingIntoMoreSharesThanWorkersIsRejectedBeforeAnyWorkerRuns) {
  for (const char* name : kContextNames) {
    auto context = make_context(name, name == std::string("serial") ? 1 : 2);
    auto calls = context->alloc<int>(1, {.fill = 0});
    const int asked = context->num_workers();
    const std::string message = InvalidArgumentMessage(
        [&] { context->map([&](int, std::size_t) { calls[0] += 1; }, FixedSplitFunctor{asked + 2}); });
    EXPECT_THAT(message, HasSubstr(std::to_string(asked + 2) + " shares")) << name;
    EXPECT_EQ(calls[0], 0) << name;
  }
}

TEST(BadInput, AFunctorSplittingIntoFewerSharesThanWorkersRunsThoseShares) {
  for (const char* name : kContextNames) {
    auto context = make_context(name, name == std::string("serial") ? 1 : 3);
    auto seen = context->alloc<int>(3, {.fill = 0});
    context->map([&](int worker, std::size_t index) { seen[index] = worker + 1; }, FixedSplitFunctor{1});
    EXPECT_EQ(seen[0], 1) << name;  // share 0 ran on worker 0
    EXPECT_EQ(seen[1], 0) << name;
    context->map([&](int worker, std::size_t index) { seen[index] = worker + 1; }, FixedSplitFunctor{0});
  }
}

}  // namespace
}  // namespace pasha
