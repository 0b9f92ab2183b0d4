// The conformance suite's tests. Each test name states the requirement it checks.
#include "conformance/conformance.h"

#include <gmock/gmock.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <numeric>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "functors/ndarray/ndarray.h"
#include "functors/sequence/sequence.h"
#include "pasha/core/array.h"
#include "pasha/core/context.h"
#include "pasha/core/errors.h"
#include "pasha/core/functor.h"
#include "pasha/core/hooks.h"

namespace pasha::conformance {

void ContextConformance::SetUp() { context_ = GetParam()(); }

void SingleCallerConformance::SetUp() {
  ContextConformance::SetUp();
  if (context().num_callers() > 1) {
    GTEST_SKIP() << "for contexts driven by one caller; this one has " << context().num_callers() << " ("
                 << context().name() << ")";
  }
}

namespace {

using ::testing::HasSubstr;

// What one map saw, recorded in the context's own (shared) memory: per index, how often it was
// visited, by which worker, and the position of the visit in that worker's sequence.
struct Visits {
  Visits(Context& context, std::size_t n)
      : count(context.alloc<int>(n, {.fill = 0})),
        worker(context.alloc<int>(n, {.fill = -1})),
        step(context.alloc<std::int64_t>(n, {.fill = -1})),
        steps_per_worker(static_cast<std::size_t>(context.num_workers()), 0) {}

  // Call from the kernel. steps_per_worker is private to each worker (each thread touches its own
  // slot; each process its own copy).
  void record(int worker_id, std::size_t index) {
    count[index] += 1;
    worker[index] = worker_id;
    step[index] = steps_per_worker[static_cast<std::size_t>(worker_id)]++;
  }

  Array<int> count;
  Array<int> worker;
  Array<std::int64_t> step;
  std::vector<std::int64_t> steps_per_worker;
};

// Checks that the visits form the static schedule: every index once, worker w owning one contiguous,
// ascending block, blocks in worker order, sizes differing by at most one, min(n, workers) workers.
void ExpectStaticSchedule(const Visits& visits, std::size_t n, int num_workers) {
  std::vector<std::size_t> block_sizes;
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(visits.count[i], 1) << "index " << i;
    const int w = visits.worker[i];
    ASSERT_GE(w, 0);
    ASSERT_LT(w, num_workers);
    if (i == 0 || visits.worker[i - 1] != w) {
      ASSERT_EQ(static_cast<std::size_t>(w), block_sizes.size()) << "worker " << w << " does not own one block";
      ASSERT_EQ(visits.step[i], 0) << "worker " << w << " did not start at its block's first index";
      block_sizes.push_back(0);
    } else {
      ASSERT_EQ(visits.step[i], visits.step[i - 1] + 1) << "worker " << w << " is not ascending at " << i;
    }
    ++block_sizes.back();
  }
  EXPECT_EQ(block_sizes.size(), std::min(n, static_cast<std::size_t>(num_workers)));
  if (!block_sizes.empty()) {
    auto [smallest, largest] = std::ranges::minmax(block_sizes);
    EXPECT_LE(largest - smallest, 1u) << "shares are not balanced";
  }
}

std::vector<double> Iota(std::size_t n, double scale = 1.0) {
  std::vector<double> values(n);
  for (std::size_t i = 0; i < n; ++i) values[i] = scale * static_cast<double>(i) + 0.5;
  return values;
}

// --- Visiting -------------------------------------------------------------------------------------

TEST_P(ContextConformance, EveryIndexIsVisitedExactlyOnceWithItsValue) {
  const std::vector<double> input = Iota(1001, 2.0);
  auto seen = context().alloc<double>(input.size(), {.fill = -1.0});
  Visits visits(context(), input.size());
  context().map(
      [&](int worker_id, std::size_t index, double value) {
        visits.record(worker_id, index);
        seen[index] = value;
      },
      input);
  for (std::size_t i = 0; i < input.size(); ++i) {
    ASSERT_EQ(visits.count[i], 1) << "index " << i;
    ASSERT_EQ(seen[i], input[i]) << "index " << i;
  }
}

TEST_P(ContextConformance, WorkerIdsAreInRange) {
  Visits visits(context(), 500);
  context().map([&](int worker_id, std::size_t index, int) { visits.record(worker_id, index); },
                std::views::iota(0, 500));
  for (std::size_t i = 0; i < 500; ++i) {
    EXPECT_GE(visits.worker[i], 0);
    EXPECT_LT(visits.worker[i], context().num_workers());
  }
}

TEST_P(ContextConformance, SharesAreContiguousAscendingAndBalanced) {
  for (std::size_t n : {1u, 2u, 3u, 7u, 10u, 97u, 1000u, 40000u}) {
    SCOPED_TRACE("n = " + std::to_string(n));
    Visits visits(context(), n);
    context().map([&](int worker_id, std::size_t index, int) { visits.record(worker_id, index); },
                  std::views::iota(0, static_cast<int>(n)));
    ExpectStaticSchedule(visits, n, context().num_workers());
  }
}

TEST_P(ContextConformance, EmptyInputCallsNoKernel) {
  auto calls = context().alloc<int>(1, {.fill = 0});
  std::vector<double> empty;
  context().map([&](int, std::size_t, double) { calls[0] += 1; }, empty);
  EXPECT_EQ(calls[0], 0);
}

TEST_P(ContextConformance, FewerElementsThanWorkersGivesOneElementPerWorker) {
  const std::size_t n = static_cast<std::size_t>(std::max(1, context().num_workers() - 1));
  Visits visits(context(), n);
  context().map([&](int worker_id, std::size_t index, int) { visits.record(worker_id, index); },
                std::views::iota(0, static_cast<int>(n)));
  ExpectStaticSchedule(visits, n, context().num_workers());
}

TEST_P(ContextConformance, KernelResultsAreVisibleToTheCallerAfterMap) {
  std::vector<double> inp(100, 1.5);
  Array<double> outp = context().alloc<double>({100});
  context().map([&](int, std::size_t index, double value) { outp[index] = 3 * value; }, inp);
  for (double v : outp) ASSERT_EQ(v, 4.5);
}

TEST_P(ContextConformance, StandardRangesAreMappable) {
  std::array<int, 5> fixed{1, 2, 3, 4, 5};
  std::vector<int> backing{10, 20, 30};
  std::span<const int> span(backing);
  auto out = context().alloc<int>(8, {.fill = 0});
  context().map([&](int, std::size_t i, int v) { out[i] = v; }, fixed);
  context().map([&](int, std::size_t i, int v) { out[5 + i] = v; }, span);
  EXPECT_THAT(std::vector<int>(out.begin(), out.end()), ::testing::ElementsAre(1, 2, 3, 4, 5, 10, 20, 30));
}

TEST_P(ContextConformance, RepeatedMapsOnOneContextAllWork) {
  auto total = context().alloc<std::int64_t>({}, {.fill = 0, .per_worker = true});
  for (int round = 0; round < 20; ++round) {
    context().map([&](int w, std::size_t, int v) { total[static_cast<std::size_t>(w)] += v; },
                  std::views::iota(1, 101));
  }
  EXPECT_EQ(std::accumulate(total.begin(), total.end(), std::int64_t{0}), 20 * 5050);
}

// --- Allocation -----------------------------------------------------------------------------------

template <class T>
void ExpectFilled(const Array<T>& array, T value) {
  for (const T& element : array) ASSERT_EQ(element, value);
}

// Each worker's slice of a per-worker array is contiguous in `order` and starts on its own
// Context::kAlignment boundary, so that no two workers' slices share a cache line.
template <class T>
void ExpectWorkerSlicesApart(const Array<T>& a, Order order, int num_workers) {
  const std::size_t worker_axis = order == Order::C ? 0 : a.ndim() - 1;
  ASSERT_EQ(a.shape()[worker_axis], static_cast<std::size_t>(num_workers));
  const auto address = [&](int w) { return reinterpret_cast<std::uintptr_t>(a.data() + a.strides()[worker_axis] * w); };
  for (int w = 0; w < num_workers; ++w) {
    EXPECT_EQ(address(w) % Context::kAlignment, 0u) << "worker " << w;
    const Array<T> slice = a.slice(worker_axis, static_cast<std::size_t>(w));
    EXPECT_TRUE(order == Order::C ? slice.c_contiguous() : slice.f_contiguous()) << "worker " << w;
    if (w > 0 && slice.size() > 0) {
      const std::uintptr_t previous_end = address(w - 1) + slice.size() * sizeof(T);
      EXPECT_LE(previous_end, address(w)) << "worker " << w << " overlaps its neighbour";
    }
  }
}

template <class T>
void CheckAllocMatrix(Context& context) {
  const std::vector<Shape> shapes = {Shape(7), Shape{7}, Shape{3, 4}, Shape(std::vector<int>{2, 3, 4}), Shape{}};
  for (const Shape& shape : shapes) {
    for (Order order : {Order::C, Order::F}) {
      for (bool per_worker : {false, true}) {
        SCOPED_TRACE("shape " + shape.to_string() + (order == Order::C ? " C" : " F") +
                     (per_worker ? " per_worker" : ""));
        Shape expected = shape;
        if (per_worker) {
          expected.insert(order == Order::C ? 0 : expected.ndim(), static_cast<std::size_t>(context.num_workers()));
        }
        auto check_layout = [&](const Array<T>& a) {
          EXPECT_TRUE(std::ranges::equal(a.shape(), expected));
          EXPECT_EQ(a.ndim(), expected.ndim());
          EXPECT_EQ(a.size(), expected.num_elements());
          EXPECT_NE(a.data(), nullptr);
          if (per_worker) {
            ExpectWorkerSlicesApart(a, order, context.num_workers());
          } else {
            EXPECT_TRUE(order == Order::C ? a.c_contiguous() : a.f_contiguous());
            // A layout that is both C and F contiguous has at most one extent greater than one.
            const auto big = std::ranges::count_if(a.shape(), [](std::size_t e) { return e > 1; });
            EXPECT_EQ(a.c_contiguous() && a.f_contiguous(), big <= 1);
          }
        };
        check_layout(context.alloc<T>(shape, {.order = order, .per_worker = per_worker}));
        for (int fill : {0, 1, 42}) {
          auto a = context.alloc<T>(shape, {.order = order, .fill = static_cast<T>(fill), .per_worker = per_worker});
          check_layout(a);
          ExpectFilled(a, static_cast<T>(fill));
        }
      }
    }
  }
}

TEST_P(ContextConformance, AllocGivesTheShapeOrderAndFillAskedFor) {
  CheckAllocMatrix<double>(context());
  CheckAllocMatrix<float>(context());
  CheckAllocMatrix<std::int32_t>(context());
  CheckAllocMatrix<std::uint8_t>(context());
  CheckAllocMatrix<std::uint64_t>(context());
}

TEST_P(ContextConformance, AllocPerWorkerAddsTheWorkerAxisFirstForCAndLastForF) {
  const auto n = static_cast<std::size_t>(context().num_workers());
  auto c = context().alloc<float>({3, 5}, {.per_worker = true});
  auto f = context().alloc<float>({3, 5}, {.order = Order::F, .per_worker = true});
  EXPECT_THAT(std::vector<std::size_t>(c.shape().begin(), c.shape().end()), ::testing::ElementsAre(n, 3, 5));
  EXPECT_THAT(std::vector<std::size_t>(f.shape().begin(), f.shape().end()), ::testing::ElementsAre(3, 5, n));
}

TEST_P(ContextConformance, AllocLikeKeepsThePrototypeUnlessOverridden) {
  auto prototype = context().alloc<double>({4, 6}, {.order = Order::F, .fill = 7.0});

  auto same = context().alloc_like(prototype);
  static_assert(std::is_same_v<decltype(same), Array<double>>);
  EXPECT_TRUE(std::ranges::equal(same.shape(), prototype.shape()));
  EXPECT_TRUE(same.f_contiguous());
  EXPECT_FALSE(same.c_contiguous());
  EXPECT_NE(same.data(), prototype.data());

  auto filled = context().alloc_like(prototype, {.fill = 42});
  ExpectFilled(filled, 42.0);

  auto other_type = context().alloc_like<std::int16_t>(prototype, {.fill = 1});
  static_assert(std::is_same_v<decltype(other_type), Array<std::int16_t>>);
  EXPECT_TRUE(std::ranges::equal(other_type.shape(), prototype.shape()));
  EXPECT_TRUE(other_type.f_contiguous());
  ExpectFilled<std::int16_t>(other_type, 1);

  auto reshaped = context().alloc_like(prototype, {.shape = {2, 3, 5}, .order = Order::C, .fill = 0});
  EXPECT_THAT(std::vector<std::size_t>(reshaped.shape().begin(), reshaped.shape().end()),
              ::testing::ElementsAre(2, 3, 5));
  EXPECT_TRUE(reshaped.c_contiguous());
  ExpectFilled(reshaped, 0.0);

  auto per_worker = context().alloc_like<float>(prototype, {.per_worker = true});
  EXPECT_THAT(std::vector<std::size_t>(per_worker.shape().begin(), per_worker.shape().end()),
              ::testing::ElementsAre(4, 6, static_cast<std::size_t>(context().num_workers())));
}

TEST_P(ContextConformance, AllocWithOverflowingByteSizeIsInvalidArgument) {
  const std::size_t huge = std::size_t{1} << 62;
  try {
    context().alloc<double>({huge, 16});
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr(std::to_string(huge)));
  }
  EXPECT_THROW(context().alloc<double>({std::size_t{1} << 61}), std::invalid_argument);
}

TEST_P(ContextConformance, PerWorkerArraysSupportReductions) {
  auto partial = context().alloc<double>({2}, {.fill = 0.0, .per_worker = true});
  const std::vector<double> input = Iota(10000);
  context().map(
      [&](int worker_id, std::size_t, double value) {
        partial(worker_id, 0) += value;
        partial(worker_id, 1) += 1;
      },
      input);
  double sum = 0, count = 0;
  for (int w = 0; w < context().num_workers(); ++w) {
    sum += partial(w, 0);
    count += partial(w, 1);
  }
  EXPECT_EQ(count, 10000);
  EXPECT_DOUBLE_EQ(sum, std::accumulate(input.begin(), input.end(), 0.0));
}

// --- N-d arrays -----------------------------------------------------------------------------------

TEST_P(ContextConformance, OneDimensionalArraysGiveElements) {
  auto input = context().alloc<int>(50);
  std::iota(input.begin(), input.end(), 100);
  auto out = context().alloc<int>(50, {.fill = 0});
  context().map([&](int, std::size_t i, int& value) { out[i] = value * 2; }, input);
  for (std::size_t i = 0; i < 50; ++i) ASSERT_EQ(out[i], 2 * (100 + static_cast<int>(i)));
}

TEST_P(ContextConformance, NdArraysGiveSubArraysAlongEachAxisInBothOrders) {
  for (Order order : {Order::C, Order::F}) {
    auto cube = context().alloc<std::int64_t>({3, 4, 5}, {.order = order});
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t j = 0; j < 4; ++j)
        for (std::size_t k = 0; k < 5; ++k) cube(i, j, k) = static_cast<std::int64_t>(100 * i + 10 * j + k);

    for (int axis = 0; axis < 3; ++axis) {
      SCOPED_TRACE("axis " + std::to_string(axis) + (order == Order::C ? " C" : " F"));
      const std::size_t n = cube.shape()[static_cast<std::size_t>(axis)];
      auto sums = context().alloc<std::int64_t>(n, {.fill = -1});
      auto shapes_ok = context().alloc<int>(n, {.fill = 0});
      auto kernel = [&](int, std::size_t index, Array<std::int64_t> slab) {
        shapes_ok[index] = slab.ndim() == 2 ? 1 : 0;
        std::int64_t sum = 0;
        for (std::int64_t v : slab) sum += v;
        sums[index] = sum;
      };
      if (axis == 0) {
        context().map(kernel, cube);  // an Array maps along its first axis
      } else {
        context().map(kernel, along(cube, axis));
      }
      for (std::size_t index = 0; index < n; ++index) {
        std::int64_t expected = 0;
        for (std::size_t i = 0; i < 3; ++i)
          for (std::size_t j = 0; j < 4; ++j)
            for (std::size_t k = 0; k < 5; ++k) {
              const std::size_t position[] = {i, j, k};
              if (position[axis] == index) expected += cube(i, j, k);
            }
        EXPECT_EQ(sums[index], expected) << "index " << index;
        EXPECT_EQ(shapes_ok[index], 1);
      }
    }
  }
}

TEST_P(ContextConformance, SubArrayWritesLandInTheParentArray) {
  auto image = context().alloc<float>({6, 8}, {.fill = 0.0f});
  context().map(
      [](int, std::size_t row, Array<float> pixels) {
        for (std::size_t col = 0; col < pixels.size(); ++col) pixels(col) = static_cast<float>(row * 10 + col);
      },
      image);
  for (std::size_t r = 0; r < 6; ++r)
    for (std::size_t c = 0; c < 8; ++c) ASSERT_EQ(image(r, c), static_cast<float>(r * 10 + c));
}

TEST_P(ContextConformance, GenericKernelsGetRowsOfMatricesAndElementsOfVectors) {
  auto matrix = context().alloc<double>({5, 4});
  std::iota(matrix.begin(), matrix.end(), 0.0);
  auto row_sums = context().alloc<double>(5, {.fill = -1});
  context().map(
      [&](int, std::size_t i, auto row) {
        double sum = 0;
        for (double v : row) sum += v;
        row_sums[i] = sum;
      },
      matrix);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(row_sums[i], 16.0 * static_cast<double>(i) + 6.0) << "row " << i;

  auto vector_1d = context().alloc<double>(9);
  std::iota(vector_1d.begin(), vector_1d.end(), 1.0);
  auto out = context().alloc<double>(9, {.fill = 0});
  context().map([&](int, std::size_t i, auto v) { out[i] = 3 * v; }, vector_1d);
  for (std::size_t i = 0; i < 9; ++i) EXPECT_EQ(out[i], 3.0 * static_cast<double>(i + 1));
}

TEST_P(ContextConformance, AlongWithAnAxisOutOfRangeIsInvalidArgument) {
  auto matrix = context().alloc<int>({2, 3});
  EXPECT_THROW(along(matrix, 2), std::invalid_argument);
  EXPECT_THROW(along(matrix, -3), std::invalid_argument);
  EXPECT_NO_THROW(along(matrix, -1));
}

// --- Functors -------------------------------------------------------------------------------------

// A functor of its own: pairs (i, i*i) for i in [0, n), in shares of its own making.
struct SquaresFunctor {
  std::size_t n;
  std::vector<IndexRange> split(int num_workers) const { return split_evenly(n, num_workers); }
  template <class Visit>
  void iterate(const IndexRange& share, Visit&& visit) const {
    for (std::size_t i = share.begin; i < share.end; ++i) visit(i, i, i * i);
  }
};

TEST_P(ContextConformance, CustomFunctorsPassTheirValuesToTheKernel) {
  auto out = context().alloc<std::size_t>(30, {.fill = 0});
  context().map([&](int, std::size_t index, std::size_t i, std::size_t square) { out[index] = i + square; },
                SquaresFunctor{30});
  for (std::size_t i = 0; i < 30; ++i) ASSERT_EQ(out[i], i + i * i);
}

// A functor whose shares are not index ranges: named chunks of a string.
struct WordsFunctor {
  std::vector<std::string> words;
  struct Share {
    std::size_t first, count;
  };
  std::vector<Share> split(int num_workers) const {
    std::vector<Share> shares;
    for (IndexRange r : split_evenly(words.size(), num_workers)) shares.push_back({r.begin, r.size()});
    return shares;
  }
  template <class Visit>
  void iterate(const Share& share, Visit&& visit) const {
    for (std::size_t i = share.first; i < share.first + share.count; ++i) visit(i, words[i].size());
  }
};

// A functor that is not indexed and whose iterate must not be thrown through (noexcept, as one that
// walks a C callback API would be).
struct NoexceptWalk {
  std::size_t n;
  struct Share {
    std::size_t first, count;
  };
  std::vector<Share> split(int num_workers) const {
    std::vector<Share> shares;
    for (IndexRange r : split_evenly(n, num_workers)) shares.push_back({r.begin, r.size()});
    return shares;
  }
  template <class Visit>
  void iterate(const Share& share, Visit&& visit) const noexcept {
    for (std::size_t i = share.first; i < share.first + share.count; ++i) {
      if (!visit(i)) return;  // the map was cancelled
    }
  }
};

TEST_P(ContextConformance, CancellingANonIndexedFunctorDoesNotThrowThroughItsIterate) {
  auto visited = context().alloc<std::int64_t>({}, {.fill = 0, .per_worker = true});
  EXPECT_THROW(context().map(
                   [&](int w, std::size_t i) {
                     if (i == 0) throw std::runtime_error("first element");
                     visited[static_cast<std::size_t>(w)] += 1;
                   },
                   NoexceptWalk{2000}),
               WorkerError);
}

TEST_P(ContextConformance, FunctorsWithTheirOwnShareTypesWork) {
  WordsFunctor words{{"a", "bb", "ccc", "dddd", "eeeee"}};
  auto lengths = context().alloc<std::size_t>(5, {.fill = 0});
  context().map([&](int, std::size_t i, std::size_t length) { lengths[i] = length; }, words);
  EXPECT_THAT(std::vector<std::size_t>(lengths.begin(), lengths.end()), ::testing::ElementsAre(1, 2, 3, 4, 5));
}

}  // namespace

// A user type made mappable through an ADL pasha_functor(), as EXtra-pasha's _pasha_functor_.
struct Polyline {
  std::vector<double> xs;
};
SquaresFunctor pasha_functor(const Polyline& line) { return SquaresFunctor{line.xs.size()}; }

namespace {

TEST_P(ContextConformance, TypesWithAnAdlPashaFunctorAreMappable) {
  Polyline line{{1.0, 2.0, 3.0, 4.0}};
  auto out = context().alloc<std::size_t>(4, {.fill = 0});
  context().map([&](int, std::size_t index, std::size_t, std::size_t square) { out[index] = square; }, line);
  EXPECT_THAT(std::vector<std::size_t>(out.begin(), out.end()), ::testing::ElementsAre(0, 1, 4, 9));
}

// A functor that returns `shares` shares of one element each, whatever it is asked for.
struct FixedSplitFunctor {
  std::size_t shares;
  std::vector<IndexRange> split(int) const {
    std::vector<IndexRange> result;
    for (std::size_t s = 0; s < shares; ++s) result.push_back({s, s + 1});
    return result;
  }
  template <class Visit>
  void iterate(const IndexRange& share, Visit&& visit) const {
    for (std::size_t i = share.begin; i < share.end; ++i) visit(i);
  }
};

TEST_P(ContextConformance, FewerSharesThanWorkersRunOnTheFirstWorkersOneShareEach) {
  const std::size_t shares = static_cast<std::size_t>(std::max(1, context().num_workers() - 1));
  Visits visits(context(), shares);
  context().map([&](int worker_id, std::size_t index) { visits.record(worker_id, index); }, FixedSplitFunctor{shares});
  for (std::size_t s = 0; s < shares; ++s) {
    EXPECT_EQ(visits.count[s], 1) << "share " << s;
    EXPECT_EQ(visits.worker[s], static_cast<int>(s)) << "share " << s << " ran on another worker";
  }
}

TEST_P(ContextConformance, ASplitIntoNoSharesCallsNoKernel) {
  auto calls = context().alloc<int>(1, {.fill = 0});
  context().map([&](int, std::size_t) { calls[0] += 1; }, FixedSplitFunctor{0});
  EXPECT_EQ(calls[0], 0);
}

TEST_P(ContextConformance, MoreSharesThanWorkersAreHandedOutToFreeWorkersEachRunOnce) {
  const std::size_t shares = 5 * static_cast<std::size_t>(context().num_workers()) + 3;
  Visits visits(context(), shares);
  context().map([&](int worker_id, std::size_t index) { visits.record(worker_id, index); }, FixedSplitFunctor{shares});
  for (std::size_t s = 0; s < shares; ++s) {
    ASSERT_EQ(visits.count[s], 1) << "share " << s;
    ASSERT_GE(visits.worker[s], 0);
    ASSERT_LT(visits.worker[s], context().num_workers());
  }
  // Each worker takes shares in ascending order.
  for (std::size_t a = 0; a < shares; ++a) {
    for (std::size_t b = a + 1; b < shares; ++b) {
      if (visits.worker[a] == visits.worker[b]) {
        ASSERT_LT(visits.step[a], visits.step[b]) << a << " and " << b;
      }
    }
  }
}

// --- Scheduling -----------------------------------------------------------------------------------

TEST_P(ContextConformance, DynamicScheduleVisitsEveryIndexExactlyOnce) {
  for (std::size_t chunk : {0u, 1u, 7u, 1000u}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    Visits visits(context(), 997);
    context().map([&](int worker_id, std::size_t index, int) { visits.record(worker_id, index); },
                  std::views::iota(0, 997), {.schedule = Schedule::dynamic, .chunk = chunk});
    for (std::size_t i = 0; i < 997; ++i) {
      ASSERT_EQ(visits.count[i], 1) << "index " << i;
      ASSERT_GE(visits.worker[i], 0);
      ASSERT_LT(visits.worker[i], context().num_workers());
    }
  }
}

TEST_P(ContextConformance, DynamicChunksLargerThanTheInputStillVisitEveryIndexOnce) {
  for (std::size_t chunk : {std::size_t{997}, std::size_t{1} << 40, SIZE_MAX / 2 + 1, SIZE_MAX - 5, SIZE_MAX}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    Visits visits(context(), 997);
    context().map([&](int worker_id, std::size_t index, int) { visits.record(worker_id, index); },
                  std::views::iota(0, 997), {.schedule = Schedule::dynamic, .chunk = chunk});
    for (std::size_t i = 0; i < 997; ++i) ASSERT_EQ(visits.count[i], 1) << "index " << i;
  }
}

TEST_P(ContextConformance, DynamicScheduleOfANonIndexedFunctorIsInvalidArgumentNamingItsType) {
  WordsFunctor words{{"a"}};
  try {
    context().map([](int, std::size_t, std::size_t) {}, words, {.schedule = Schedule::dynamic});
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("pasha::conformance::(anonymous namespace)::WordsFunctor is not one"));
  }
}

// --- Hooks ----------------------------------------------------------------------------------------

// Records, in shared memory, at which step of its worker each hook ran.
class RecordingHook : public MapHook {
 public:
  RecordingHook(Context& context, std::vector<std::string>& caller_log)
      : per_worker_(context.alloc<std::int64_t>({4}, {.fill = -1, .per_worker = true})),
        steps_(context.alloc<std::int64_t>({}, {.fill = 0, .per_worker = true})),
        caller_log_(caller_log) {}

  void pre_map(Context&) override { caller_log_.push_back("pre_map"); }
  void post_map(Context&) override { caller_log_.push_back("post_map"); }
  void pre_worker(Context&, int w) override { per_worker_(w, 0) = next_step(w); }
  void post_worker(Context&, int w) override { per_worker_(w, 3) = next_step(w); }

  // Called by the kernel: records the step of the worker's first and last kernel call.
  void kernel_call(int w) {
    const std::int64_t step = next_step(w);
    if (per_worker_(w, 1) < 0) per_worker_(w, 1) = step;
    per_worker_(w, 2) = step;
  }
  std::int64_t at(int w, int event) const { return per_worker_(w, event); }

 private:
  std::int64_t next_step(int w) { return steps_[static_cast<std::size_t>(w)]++; }
  Array<std::int64_t> per_worker_;  // (workers, {pre_worker, first kernel, last kernel, post_worker})
  Array<std::int64_t> steps_;
  std::vector<std::string>& caller_log_;
};

TEST_P(ContextConformance, HooksRunPreMapThenPerWorkerAroundItsKernelCallsThenPostMap) {
  std::vector<std::string> log;
  auto hook = std::make_shared<RecordingHook>(context(), log);
  context().add_hook(hook);
  const int n = context().num_workers() * 3;
  context().map([&](int w, std::size_t, int) { hook->kernel_call(w); }, std::views::iota(0, n));
  EXPECT_THAT(log, ::testing::ElementsAre("pre_map", "post_map"));
  for (int w = 0; w < context().num_workers(); ++w) {
    SCOPED_TRACE("worker " + std::to_string(w));
    EXPECT_EQ(hook->at(w, 0), 0) << "pre_worker first";
    EXPECT_EQ(hook->at(w, 1), 1) << "then the kernel calls";
    EXPECT_EQ(hook->at(w, 2), 3);
    EXPECT_EQ(hook->at(w, 3), 4) << "then post_worker";
  }
}

TEST_P(ContextConformance, PostMapRunsAfterAFailedMapToo) {
  std::vector<std::string> log;
  context().add_hook(std::make_shared<RecordingHook>(context(), log));
  EXPECT_THROW(context().map([](int, std::size_t, int) { throw std::runtime_error("no"); }, std::views::iota(0, 4)),
               WorkerError);
  EXPECT_THAT(log, ::testing::ElementsAre("pre_map", "post_map"));
}

// Counts, per worker, the pre_worker and post_worker calls it got; optionally throws in one of them.
class CountingHook : public MapHook {
 public:
  enum class Throw { never, in_pre_map, in_pre_worker };
  CountingHook(Context& context, std::vector<std::string>& log, std::string name, Throw throws = Throw::never)
      : counts_(context.alloc<std::int64_t>({2}, {.fill = 0, .per_worker = true})),
        log_(log),
        name_(std::move(name)),
        throws_(throws) {}

  void pre_map(Context&) override {
    log_.push_back(name_ + ".pre_map");
    if (throws_ == Throw::in_pre_map) throw std::runtime_error(name_ + " refuses the map");
  }
  void post_map(Context&) override { log_.push_back(name_ + ".post_map"); }
  void pre_worker(Context&, int w) override {
    if (throws_ == Throw::in_pre_worker) throw std::runtime_error(name_ + " refuses worker " + std::to_string(w));
    counts_(w, 0) += 1;
  }
  void post_worker(Context&, int w) override { counts_(w, 1) += 1; }

  std::int64_t pre(int w) const { return counts_(w, 0); }
  std::int64_t post(int w) const { return counts_(w, 1); }

 private:
  Array<std::int64_t> counts_;
  std::vector<std::string>& log_;
  std::string name_;
  Throw throws_;
};

TEST_P(ContextConformance, PostWorkerRunsForEveryPreWorkerWhenKernelsThrow) {
  std::vector<std::string> log;
  auto hook = std::make_shared<CountingHook>(context(), log, "a");
  context().add_hook(hook);
  const int n = context().num_workers();
  for (int round = 0; round < 5; ++round) {
    EXPECT_THROW(context().map([](int, std::size_t, int) { throw std::runtime_error("kernel"); },
                               std::views::iota(0, 10 * n)),
                 WorkerError);
  }
  for (int w = 0; w < n; ++w) {
    EXPECT_EQ(hook->pre(w), 5) << "worker " << w;
    EXPECT_EQ(hook->post(w), 5) << "worker " << w << ": post_worker skipped after a kernel exception";
  }
}

TEST_P(ContextConformance, WhenAHooksPreMapThrowsEarlierHooksStillGetPostMapAndNoWorkerRuns) {
  std::vector<std::string> log;
  auto first = std::make_shared<CountingHook>(context(), log, "first");
  auto refusing = std::make_shared<CountingHook>(context(), log, "second", CountingHook::Throw::in_pre_map);
  auto third = std::make_shared<CountingHook>(context(), log, "third");
  context().add_hook(first);
  context().add_hook(refusing);
  context().add_hook(third);
  auto calls = context().alloc<int>(1, {.fill = 0});
  try {
    context().map([&](int, std::size_t, int) { calls[0] = 1; }, std::views::iota(0, 4));
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("second refuses the map"));
  }
  EXPECT_THAT(log, ::testing::ElementsAre("first.pre_map", "second.pre_map", "first.post_map"));
  EXPECT_EQ(calls[0], 0);
}

TEST_P(ContextConformance, WhenAHooksPreWorkerThrowsEarlierHooksStillGetPostWorker) {
  std::vector<std::string> log;
  auto first = std::make_shared<CountingHook>(context(), log, "first");
  auto refusing = std::make_shared<CountingHook>(context(), log, "second", CountingHook::Throw::in_pre_worker);
  context().add_hook(first);
  context().add_hook(refusing);
  try {
    context().map([](int, std::size_t, int) {}, std::views::iota(0, context().num_workers()));
    FAIL() << "no exception";
  } catch (const WorkerError& e) {
    EXPECT_EQ(e.worker_id(), 0);
    EXPECT_THAT(e.what(), HasSubstr("second refuses worker 0"));
  }
  for (int w = 0; w < context().num_workers(); ++w) {
    EXPECT_EQ(first->pre(w), 1) << "worker " << w;
    EXPECT_EQ(first->post(w), 1) << "worker " << w;
  }
}

// Writes each of its calls into a journal: the caller's (pre_map, post_map) and, in memory every worker
// reaches, one per worker (pre_worker, post_worker), as stage * 10 + the hook's number.
class JournalHook : public MapHook {
 public:
  static constexpr std::int64_t kPreWorker = 1, kPostWorker = 2;

  JournalHook(int number, std::vector<std::string>& caller_log, Array<std::int64_t>& worker_log,
              Array<std::int64_t>& worker_calls)
      : number_(number), caller_log_(caller_log), worker_log_(worker_log), worker_calls_(worker_calls) {}

  void pre_map(Context&) override { caller_log_.push_back("pre_map " + std::to_string(number_)); }
  void post_map(Context&) override { caller_log_.push_back("post_map " + std::to_string(number_)); }
  void pre_worker(Context&, int w) override { write(w, kPreWorker); }
  void post_worker(Context&, int w) override { write(w, kPostWorker); }

 private:
  void write(int w, std::int64_t stage) {
    worker_log_(w, worker_calls_[static_cast<std::size_t>(w)]++) = stage * 10 + number_;
  }

  int number_;
  std::vector<std::string>& caller_log_;
  Array<std::int64_t>& worker_log_;
  Array<std::int64_t>& worker_calls_;
};

// Attaches `count` JournalHooks and maps once: every stage runs its hooks in pasha's one order.
void expect_hooks_in_order(Context& context, int count) {
  std::vector<std::string> caller_log;
  auto worker_log = context.alloc<std::int64_t>({static_cast<std::size_t>(2 * count)}, {.fill = 0, .per_worker = true});
  auto worker_calls = context.alloc<std::int64_t>({}, {.fill = 0, .per_worker = true});
  for (int number = 1; number <= count; ++number) {
    context.add_hook(std::make_shared<JournalHook>(number, caller_log, worker_log, worker_calls));
  }
  context.map([](int, std::size_t, int) {}, std::views::iota(0, context.num_workers()));
  std::vector<std::string> expected_caller;
  std::vector<std::int64_t> expected_worker;
  for (int number = 1; number <= count; ++number) {
    expected_caller.push_back("pre_map " + std::to_string(number));
    expected_worker.push_back(JournalHook::kPreWorker * 10 + number);
  }
  for (int number = count; number >= 1; --number) {
    expected_caller.push_back("post_map " + std::to_string(number));
    expected_worker.push_back(JournalHook::kPostWorker * 10 + number);
  }
  EXPECT_EQ(caller_log, expected_caller) << "pre_map in the order added, post_map last added first";
  for (int w = 0; w < context.num_workers(); ++w) {
    std::vector<std::int64_t> seen;
    for (int call = 0; call < 2 * count; ++call) seen.push_back(worker_log(w, call));
    EXPECT_EQ(seen, expected_worker) << "worker " << w << ": pre_worker in the order added, post_worker reversed";
  }
}

TEST_P(ContextConformance, TwoHooksRunPreStagesInTheOrderAddedAndPostStagesLastAddedFirst) {
  expect_hooks_in_order(context(), 2);
}

TEST_P(ContextConformance, ThreeHooksRunPreStagesInTheOrderAddedAndPostStagesLastAddedFirst) {
  expect_hooks_in_order(context(), 3);
}

// --- Errors ---------------------------------------------------------------------------------------

TEST_P(ContextConformance, AKernelExceptionBecomesWorkerErrorNamingTheWorkerAndMessage) {
  const std::size_t n = 100;
  for (std::size_t bad : {std::size_t{0}, std::size_t{37}, n - 1}) {
    SCOPED_TRACE("throwing at index " + std::to_string(bad));
    const auto shares = split_evenly(n, context().num_workers());
    const auto owner = std::ranges::find_if(shares, [&](IndexRange r) { return r.begin <= bad && bad < r.end; });
    try {
      context().map(
          [&](int, std::size_t index, int) {
            if (index == bad) throw std::runtime_error("bad element " + std::to_string(index));
          },
          std::views::iota(0, static_cast<int>(n)));
      FAIL() << "no exception";
    } catch (const WorkerError& e) {
      EXPECT_EQ(e.worker_id(), owner - shares.begin());
      EXPECT_THAT(e.what(), HasSubstr("bad element " + std::to_string(bad)));
      try {
        std::rethrow_if_nested(e);
        FAIL() << "nothing nested";
      } catch (const std::exception& cause) {
        EXPECT_THAT(cause.what(), HasSubstr("bad element " + std::to_string(bad)));
      }
    }
  }
}

TEST_P(ContextConformance, WhenEveryWorkerFailsTheLowestWorkerIdIsReported) {
  try {
    context().map([](int w, std::size_t, int) { throw std::runtime_error("worker " + std::to_string(w)); },
                  std::views::iota(0, 1000));
    FAIL() << "no exception";
  } catch (const WorkerError& e) {
    EXPECT_EQ(e.worker_id(), 0);
    EXPECT_THAT(e.what(), HasSubstr("worker 0"));
  }
}

TEST_P(ContextConformance, WorkerErrorIsARuntimeError) {
  EXPECT_THROW(context().map([](int, std::size_t, int) { throw 42; }, std::views::iota(0, 3)), std::runtime_error);
}

TEST_P(ContextConformance, TheContextStaysUsableAfterAFailedMap) {
  EXPECT_THROW(context().map([](int, std::size_t, int) { throw std::logic_error("x"); }, std::views::iota(0, 50)),
               WorkerError);
  auto out = context().alloc<int>(50, {.fill = 0});
  context().map([&](int, std::size_t i, int v) { out[i] = v + 1; }, std::views::iota(0, 50));
  for (std::size_t i = 0; i < 50; ++i) ASSERT_EQ(out[i], static_cast<int>(i) + 1);
}

TEST_P(ContextConformance, AFailureStopsTheOtherWorkersEarly) {
  // Worker 0 fails at once; the others would take far longer than the test's patience if they ran
  // their whole shares.
  const std::size_t n = 1'000'000;
  auto done = context().alloc<std::int64_t>({}, {.fill = 0, .per_worker = true});
  EXPECT_THROW(context().map(
                   [&](int w, std::size_t index, int) {
                     if (index == 0) throw std::runtime_error("first");
                     done[static_cast<std::size_t>(w)] += 1;
                     volatile double sink = 0;
                     for (int k = 0; k < 2000; ++k) sink = sink + k;
                   },
                   std::views::iota(0, static_cast<int>(n))),
               WorkerError);
  EXPECT_EQ(done[0], 0) << "the failed worker went on with its share";
  const auto completed = std::accumulate(done.begin(), done.end(), std::int64_t{0});
  EXPECT_LT(static_cast<std::size_t>(completed), n - n / static_cast<std::size_t>(context().num_workers()) + 1)
      << "the other workers ran their whole shares";
}

TEST_P(ContextConformance, AFailureStopsSiblingsWithinAFewExpensiveElements) {
  // 200 elements per worker, each taking 5 ms; worker 0 fails at its first. It stops there, and the
  // others must notice within a few elements, not run their whole share (1 s).
  const int n = 200 * context().num_workers();
  auto done = context().alloc<std::int64_t>({}, {.fill = 0, .per_worker = true});
  EXPECT_THROW(context().map(
                   [&](int w, std::size_t index, int) {
                     if (index == 0) throw std::runtime_error("first");
                     std::this_thread::sleep_for(std::chrono::milliseconds(5));
                     done[static_cast<std::size_t>(w)] += 1;
                   },
                   std::views::iota(0, n)),
               WorkerError);
  EXPECT_EQ(done[0], 0) << "the failed worker went on with its share";
  for (int w = 1; w < context().num_workers(); ++w) {
    EXPECT_LT(done[static_cast<std::size_t>(w)], 40) << "worker " << w << " went on after the failure";
  }
}

// --- Nesting --------------------------------------------------------------------------------------

TEST_P(ContextConformance, AMapInsideAKernelRunsInlineWithTheOuterWorkersId) {
  auto inner_workers = context().alloc<int>({4, 3}, {.fill = -1});
  auto outer_workers = context().alloc<int>(4, {.fill = -1});
  context().map(
      [&](int outer_worker, std::size_t outer, int) {
        outer_workers[outer] = outer_worker;
        context().map([&](int inner_worker, std::size_t inner, int) { inner_workers(outer, inner) = inner_worker; },
                      std::views::iota(0, 3));
      },
      std::views::iota(0, 4));
  for (std::size_t i = 0; i < 4; ++i)
    for (std::size_t j = 0; j < 3; ++j) ASSERT_EQ(inner_workers(i, j), outer_workers[i]) << i << ", " << j;
}

TEST_P(ContextConformance, PerWorkerReductionsInsideNestedMapsCountEveryElement) {
  // The README's idiom partial[worker] += v, from a map nested in a kernel: each outer worker's
  // nested map adds into that worker's own slot.
  auto partial = context().alloc<std::int64_t>({}, {.fill = 0, .per_worker = true});
  context().map(
      [&](int, std::size_t, int) {
        context().map([&](int worker, std::size_t, int v) { partial[static_cast<std::size_t>(worker)] += v; },
                      std::views::iota(1, 1001));
      },
      std::views::iota(0, 200));
  EXPECT_EQ(std::accumulate(partial.begin(), partial.end(), std::int64_t{0}), 200 * 500500);
}

}  // namespace
}  // namespace pasha::conformance
