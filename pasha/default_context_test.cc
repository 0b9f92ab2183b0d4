#include "pasha/default_context.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <vector>

#include "pasha/pasha.h"

namespace pasha {
namespace {

using ::testing::HasSubstr;

// Checked in a fresh process (the "threadsafe" death-test style re-runs this binary for the one
// statement), so that other tests setting the default context cannot change what it sees.
TEST(DefaultContext, IsAProcessContextWithTheDefaultWorkerCountAtStart) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        const Context& context = default_context();
        std::exit(context.name() == "processes" && context.num_workers() == default_num_workers() ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(DefaultContext, FreeFunctionsTripleTheInputInPlace) {
  std::vector<double> inp(100, 1.5);
  Array<double> outp = alloc<double>({100});
  map([&](int, std::size_t index, double value) { outp[index] = 3 * value; }, inp);
  for (double v : outp) ASSERT_EQ(v, 4.5);
  Array<float> like = alloc_like<float>(outp, {.fill = 2});
  EXPECT_EQ(like.size(), 100u);
  EXPECT_EQ(like[99], 2.0f);
}

TEST(DefaultContext, CanBeSetByNameAndWorkerCount) {
  set_default_context("threads", 4);
  EXPECT_EQ(default_context().name(), "threads");
  EXPECT_EQ(default_context().num_workers(), 4);
  set_default_context("serial");
  EXPECT_EQ(default_context().name(), "serial");
  EXPECT_EQ(default_context().num_workers(), 1);
  set_default_context("processes", 3);
  EXPECT_EQ(default_context().name(), "processes");
  EXPECT_EQ(default_context().num_workers(), 3);
}

TEST(DefaultContext, CanBeSetToAContextObject) {
  auto serial = std::make_shared<SerialContext>();
  set_default_context(serial);
  EXPECT_EQ(&default_context(), serial.get());
}

TEST(DefaultContext, UnknownNamesAreInvalidArgumentsNamingTheName) {
  try {
    set_default_context("gpu", 2);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("\"gpu\""));
  }
}

TEST(DefaultContext, BadWorkerCountsAreInvalidArgumentsNamingTheCount) {
  for (int bad : {0, -1, kMaxWorkers + 1}) {
    for (const char* name : {"threads", "processes"}) {
      try {
        make_context(name, bad);
        FAIL() << name << " accepted " << bad;
      } catch (const std::invalid_argument& e) {
        EXPECT_THAT(e.what(), HasSubstr(std::to_string(bad)));
      }
    }
  }
  EXPECT_THROW(make_context("serial", 2), std::invalid_argument);
  EXPECT_THROW(set_default_context(std::shared_ptr<Context>()), std::invalid_argument);
}

TEST(DefaultContext, AllocOfMoreMemoryThanTheMachineHasIsAClearError) {
  for (const char* name : {"serial", "threads", "processes"}) {
    auto context = make_context(name);
    // 2^50 bytes: the byte size is representable, the memory is not there.
    EXPECT_THROW(context->alloc<double>({std::size_t{1} << 47}), std::bad_alloc) << name;
  }
}

}  // namespace
}  // namespace pasha
