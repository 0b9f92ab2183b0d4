#include "pasha/core/array.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace pasha {
namespace {

// An array over fresh heap memory, with a flag that says when the memory was released.
template <class T>
Array<T> MakeArray(const Shape& shape, Order order, std::shared_ptr<bool> released = nullptr) {
  const std::size_t n = shape.num_elements();
  T* data = new T[n == 0 ? 1 : n]();
  std::shared_ptr<void> owner(data, [released](void* p) {
    delete[] static_cast<T*>(p);
    if (released) *released = true;
  });
  return Array<T>(owner, data, shape, order);
}

TEST(Shape, AcceptsOneOrSeveralExtentsAndRanges) {
  EXPECT_EQ(Shape(5).ndim(), 1u);
  EXPECT_EQ(Shape({3, 4}).num_elements(), 12u);
  int rows = 2, cols = 3;
  EXPECT_EQ(Shape({rows, cols}), Shape({2u, 3u}));
  EXPECT_EQ(Shape(std::vector<long>{2, 3, 4}).num_elements(), 24u);
  EXPECT_EQ(Shape{}.num_elements(), 1u);
  EXPECT_EQ(Shape({3, 4}).to_string(), "(3, 4)");
  EXPECT_EQ(Shape(7).to_string(), "(7,)");
}

TEST(Shape, NegativeExtentsAndTooManyDimensionsAreInvalidArguments) {
  EXPECT_THROW(Shape({3, -1}), std::invalid_argument);
  EXPECT_THROW(Shape(std::vector<int>(kMaxRank + 1, 1)), std::invalid_argument);
}

TEST(Shape, ElementCountOverflowIsInvalidArgument) {
  const std::size_t big = std::size_t{1} << 40;
  EXPECT_THROW(Shape({big, big}).num_elements(), std::invalid_argument);
  EXPECT_THROW(detail::contiguous_layout(Shape({big, std::size_t{1} << 21}), 8, Order::C), std::invalid_argument);
}

TEST(Layout, AZeroExtentMakesAnEmptyArrayButItsStridesMustStillFit) {
  const std::size_t big = std::size_t{1} << 40;
  EXPECT_THROW(detail::contiguous_layout(Shape({std::size_t{0}, big, big}), 1, Order::C), std::invalid_argument);
  const detail::Layout empty = detail::contiguous_layout(Shape({std::size_t{0}, big}), 1, Order::C);
  EXPECT_EQ(empty.bytes, 0u);
  EXPECT_EQ(empty.strides[0], static_cast<std::ptrdiff_t>(big));
}

TEST(Layout, PerWorkerSlicesStartOnTheirOwnAlignedBoundary) {
  const detail::Layout c = detail::per_worker_layout(Shape({3}), sizeof(double), Order::C, 4, 128);
  EXPECT_EQ(c.shape, Shape({4, 3}));
  EXPECT_EQ(c.strides[0], 16);  // 24 bytes of data, 128 bytes apart
  EXPECT_EQ(c.strides[1], 1);
  EXPECT_EQ(c.bytes, 4u * 128);
  const detail::Layout f = detail::per_worker_layout(Shape({2, 20}), sizeof(float), Order::F, 3, 128);
  EXPECT_EQ(f.shape, Shape({2, 20, 3}));
  EXPECT_EQ(f.strides[0], 1);
  EXPECT_EQ(f.strides[1], 2);
  EXPECT_EQ(f.strides[2], 64);  // 160 bytes rounded up to 256
  // Elements whose size does not divide the alignment: slices stay whole elements and aligned.
  const detail::Layout odd = detail::per_worker_layout(Shape({1}), 24, Order::C, 2, 128);
  EXPECT_EQ(odd.strides[0] * 24 % 128, 0);
  EXPECT_THROW(detail::per_worker_layout(Shape({std::size_t{1} << 62}), 8, Order::C, 2, 128), std::invalid_argument);
}

TEST(Array, AZeroDimensionalArrayConvertsToItsElementAndOthersRefuse) {
  auto released = std::make_shared<bool>(false);
  Array<int> vector = MakeArray<int>({4}, Order::C, released);
  vector[2] = 5;
  Array<int> element = vector.slice(0, 2);
  int& ref = element;
  EXPECT_EQ(ref, 5);
  EXPECT_EQ(3 * element, 15);
  EXPECT_THROW(static_cast<void>(static_cast<int&>(vector)), std::logic_error);
}

TEST(Array, AnUnownedViewSeesTheSameElementsWithoutKeepingThemAlive) {
  auto released = std::make_shared<bool>(false);
  Array<int> owner = MakeArray<int>({3, 2}, Order::F, released);
  Array<int> view = owner.unowned();
  view(1, 1) = 9;
  EXPECT_EQ(owner(1, 1), 9);
  EXPECT_TRUE(std::ranges::equal(view.shape(), owner.shape()));
  owner = Array<int>();
  EXPECT_TRUE(*released) << "the view kept the memory alive";
}

TEST(Array, CopiesShareOneBufferWhichIsReleasedWithTheLastHandle) {
  auto released = std::make_shared<bool>(false);
  {
    Array<int> a = MakeArray<int>({4}, Order::C, released);
    Array<int> b = a;
    b[2] = 7;
    EXPECT_EQ(a[2], 7);
    EXPECT_EQ(a.data(), b.data());
    a = Array<int>();
    EXPECT_FALSE(*released);
  }
  EXPECT_TRUE(*released);
}

TEST(Array, SubArraysKeepTheBufferAlive) {
  auto released = std::make_shared<bool>(false);
  Array<int> row;
  {
    Array<int> m = MakeArray<int>({3, 4}, Order::C, released);
    m(1, 2) = 5;
    row = m.slice(0, 1);
  }
  EXPECT_FALSE(*released);
  EXPECT_EQ(row(2), 5);
  row = Array<int>();
  EXPECT_TRUE(*released);
}

TEST(Array, MultiIndexHonoursTheOrder) {
  Array<int> c = MakeArray<int>({2, 3}, Order::C);
  Array<int> f = MakeArray<int>({2, 3}, Order::F);
  std::iota(c.begin(), c.end(), 0);
  std::iota(f.begin(), f.end(), 0);
  EXPECT_EQ(c(0, 1), 1);
  EXPECT_EQ(c(1, 0), 3);
  EXPECT_EQ(f(0, 1), 2);
  EXPECT_EQ(f(1, 0), 1);
  EXPECT_EQ(&c(1, 2), c.data() + 5);
  EXPECT_EQ(&f(1, 2), f.data() + 5);
}

TEST(Array, ContiguityFlagsFollowTheLayout) {
  Array<double> c = MakeArray<double>({2, 3}, Order::C);
  Array<double> f = MakeArray<double>({2, 3}, Order::F);
  EXPECT_TRUE(c.c_contiguous());
  EXPECT_FALSE(c.f_contiguous());
  EXPECT_TRUE(f.f_contiguous());
  EXPECT_FALSE(f.c_contiguous());
  Array<double> v = MakeArray<double>({5}, Order::C);
  EXPECT_TRUE(v.c_contiguous() && v.f_contiguous());
  EXPECT_TRUE(c.slice(0, 1).c_contiguous());
  EXPECT_FALSE(c.slice(1, 1).c_contiguous());  // a column of a C array is strided
  EXPECT_FALSE(c.slice(1, 1).f_contiguous());
}

TEST(Array, IndexingAndIterationFollowMemoryOrder) {
  Array<int> f = MakeArray<int>({2, 3}, Order::F);
  for (std::size_t i = 0; i < f.size(); ++i) f[i] = static_cast<int>(i);
  EXPECT_EQ(f.data()[4], 4);
  std::vector<int> seen(f.begin(), f.end());
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  // A strided view iterates over its own elements only.
  Array<int> c = MakeArray<int>({3, 2}, Order::C);
  std::iota(c.begin(), c.end(), 0);
  Array<int> column = c.slice(1, 1);
  EXPECT_EQ(std::vector<int>(column.begin(), column.end()), (std::vector<int>{1, 3, 5}));
  EXPECT_EQ(column[2], 5);
}

TEST(Array, ZeroDimensionalArraysHoldOneElement) {
  Array<double> scalar = MakeArray<double>(Shape{}, Order::C);
  EXPECT_EQ(scalar.ndim(), 0u);
  EXPECT_EQ(scalar.size(), 1u);
  scalar[0] = 2.5;
  EXPECT_EQ(*scalar.begin(), 2.5);
}

TEST(AxisNames, NamedArraysFindTheirAxesAndSubArraysDropTheSlicedOne) {
  Array<int> a = MakeArray<int>({2, 3, 4}, Order::C).named({"train", "pulse", "pixel"});
  ASSERT_TRUE(a.has_axis_names());
  EXPECT_EQ(a.axis("pixel"), 2u);
  EXPECT_EQ(a.axis_name(0), "train");
  Array<int> per_train = a.slice(0, 1);
  EXPECT_EQ(per_train.axis_name(0), "pulse");
  EXPECT_EQ(per_train.axis_name(1), "pixel");
  EXPECT_EQ(per_train.unowned().axis("pixel"), 1u);
  EXPECT_EQ(a.slice(1, 0).axis_name(1), "pixel");
  // A sub-array's names are found once, then reused: the same interned list.
  EXPECT_EQ(&a.slice(0, 0).axis_name(0)[0], &a.slice(0, 1).axis_name(0)[0]);
  EXPECT_FALSE(a.slice(0, 0).slice(0, 0).slice(0, 0).has_axis_names());
}

TEST(AxisNames, UnnamedAxesAndUnknownNames) {
  Array<int> a = MakeArray<int>({2, 3}, Order::C);
  EXPECT_FALSE(a.has_axis_names());
  EXPECT_EQ(a.axis_name(1), "");
  EXPECT_THROW(a.axis("x"), std::invalid_argument);
  Array<int> partly = a.named({"", "pulse"});
  EXPECT_EQ(partly.axis_name(0), "");
  EXPECT_EQ(partly.axis("pulse"), 1u);
  EXPECT_FALSE(partly.slice(1, 0).has_axis_names()) << "no name left: no names";
  EXPECT_FALSE(a.named({"", ""}).has_axis_names());
}

TEST(AxisNames, AWrongCountOrARepeatedNameIsInvalidArgument) {
  Array<int> a = MakeArray<int>({2, 3}, Order::C);
  EXPECT_THROW(a.named({"train"}), std::invalid_argument);
  EXPECT_THROW(a.named({"train", "pulse", "x"}), std::invalid_argument);
  try {
    a.named({"pulse", "pulse"});
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("\"pulse\" is used twice"), std::string::npos) << e.what();
  }
  const std::vector<std::string> at_run_time{"module", "pixel"};
  EXPECT_EQ(a.named(at_run_time).axis("pixel"), 1u);
}

TEST(Array, AMovedFromHandleIsEmptyAndTheOtherOwnsTheMemory) {
  auto memory = std::make_shared<std::vector<int>>(12, 7);
  Array<int> a(memory, memory->data(), {3, 4}, Order::C);
  a = a.named({"row", "column"});
  memory.reset();
  Array<int> b = std::move(a);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.ndim(), 1u);
  EXPECT_FALSE(a.has_axis_names());
  EXPECT_EQ(a.begin(), a.end());
  EXPECT_EQ(b.size(), 12u);
  EXPECT_EQ(b(2, 3), 7);
  EXPECT_EQ(b.axis("column"), 1u);

  Array<int> c;
  c = std::move(b);
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.data(), nullptr);
  EXPECT_EQ(c(1, 1), 7);
  c = std::move(c);  // a self-move leaves it as it was
  EXPECT_EQ(c.size(), 12u);
}

TEST(Array, ADefaultConstructedArrayIsEmpty) {
  const Array<double> a;
  EXPECT_EQ(a.size(), 0u);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_THROW(static_cast<void>(static_cast<double&>(a)), std::logic_error);
}

// Resident memory of this process, in bytes.
std::size_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

TEST(AxisNames, TheNamesGoWithTheLastArrayThatUsesThem) {
  // 300,000 short-lived arrays, each with a name of its own: no name may outlive its arrays.
  std::vector<int> data(8);
  const auto make_and_drop = [&](int first, int count) {
    for (int i = first; i < first + count; ++i) {
      const Array<int> a = Array<int>(nullptr, data.data(), {2, 4}, Order::C).named({"module_" + std::to_string(i), ""});
      const Array<int> row = a.slice(1, 0);  // a sub-array's list of names too
      ASSERT_EQ(row.axis("module_" + std::to_string(i)), 0u);
    }
  };
  make_and_drop(0, 10'000);  // warm up the allocator
  const std::size_t before = ResidentBytes();
  make_and_drop(10'000, 300'000);
  const std::size_t grown = ResidentBytes() - std::min(ResidentBytes(), before);
  EXPECT_LT(grown, std::size_t{16} << 20) << "resident memory grew by " << (grown >> 20) << " MiB";
}

TEST(AxisNames, NamingAnArrayAgainAndAgainKeepsOnlyItsLastNames) {
  std::vector<int> data(8);
  Array<int> a(nullptr, data.data(), {2, 4}, Order::C);
  const auto rename = [&](int first, int count) {
    for (int i = first; i < first + count; ++i) a = a.named({"pulse_" + std::to_string(i), "pixel"});
  };
  rename(0, 10'000);
  const std::size_t before = ResidentBytes();
  rename(10'000, 300'000);
  const std::size_t grown = ResidentBytes() - std::min(ResidentBytes(), before);
  EXPECT_LT(grown, std::size_t{16} << 20) << "resident memory grew by " << (grown >> 20) << " MiB";
  EXPECT_EQ(a.axis("pulse_309999"), 0u);
  EXPECT_EQ(a.axis("pixel"), 1u);
  a = Array<int>();  // releasing the last handle does not recurse through 300,000 owners
  EXPECT_FALSE(a.has_axis_names());
}

}  // namespace
}  // namespace pasha
