// MpiContext under mpirun: the conformance suite (where its semantics apply: see BUILD.bazel) and what
// is particular to maps across ranks and nodes. Every rank runs every test, in the same order (SPMD).
#include "contexts/mpi/mpi_context.h"

#include <mpi.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <numeric>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "conformance/conformance.h"
#include "functors/xfel/testing/make_run.h"
#include "functors/xfel/xfel.h"
#include "pasha/pasha.h"

namespace pasha {
namespace {

using ::testing::HasSubstr;

int WorldRank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

// A string setting of Open MPI's, as MPI's tool interface reads it ("" when there is none).
std::string OpenMpiSetting(const char* name) {
  int provided = 0, index = 0, count = 0;
  std::string value;
  MPI_T_cvar_handle handle = MPI_T_CVAR_HANDLE_NULL;
  MPI_T_init_thread(MPI_THREAD_SINGLE, &provided);
  if (MPI_T_cvar_get_index(name, &index) == MPI_SUCCESS &&
      MPI_T_cvar_handle_alloc(index, nullptr, &handle, &count) == MPI_SUCCESS) {
    std::vector<char> text(static_cast<std::size_t>(count) + 4096, '\0');
    if (MPI_T_cvar_read(handle, text.data()) == MPI_SUCCESS) value = text.data();
    MPI_T_cvar_handle_free(&handle);
  }
  MPI_T_finalize();
  return value;
}

std::vector<conformance::ContextFactory> MpiContexts() {
  return {
      [] { return std::make_shared<MpiContext>(std::make_shared<SerialContext>()); },
      [] { return std::make_shared<MpiContext>(std::make_shared<ThreadContext>(2)); },
      [] { return std::make_shared<MpiContext>(std::make_shared<ProcessContext>(2)); },
  };
}

class MpiMaps : public ::testing::TestWithParam<conformance::ContextFactory> {
 protected:
  void SetUp() override {
    context_ = std::dynamic_pointer_cast<MpiContext>(GetParam()());
    ASSERT_NE(context_, nullptr);
  }
  MpiContext& context() { return *context_; }

 private:
  std::shared_ptr<MpiContext> context_;
};

TEST_P(MpiMaps, WorkerIdsAreGlobalAndTheCountIsTheTotalOverRanks) {
  int total = 0;
  const int local = context().local().num_workers();
  MPI_Allreduce(&local, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(context().num_workers(), total);
  int firsts_sum = 0;
  const int first = context().first_worker();
  MPI_Allreduce(&first, &firsts_sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_GE(first, 0);
  EXPECT_LE(first + local, total);
  // Every worker id is some rank's: the per-worker array gets one mark per worker.
  auto seen = context().alloc<int>({}, {.fill = 0, .per_worker = true});
  context().map([&](int w, std::size_t, int) { seen[static_cast<std::size_t>(w)] += 1; },
                std::views::iota(0, context().num_workers()));
  for (int w = 0; w < context().num_workers(); ++w) EXPECT_EQ(seen[static_cast<std::size_t>(w)], 1) << "worker " << w;
}

TEST_P(MpiMaps, IndexAlignedOutputsAreWholeOnEveryRankAfterMap) {
  constexpr std::size_t n = 100'003;
  std::vector<double> input(n);
  std::iota(input.begin(), input.end(), 0.0);
  auto out = context().alloc<double>(n, {.fill = -1});
  auto rows = context().alloc<std::int64_t>({n, 3}, {.fill = -1});
  context().map(
      [&](int w, std::size_t i, double v) {
        out[i] = 3 * v;
        rows(i, 0) = w;
        rows(i, 2) = static_cast<std::int64_t>(i);
      },
      input);
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(out[i], 3.0 * static_cast<double>(i)) << "index " << i << " on rank " << context().rank();
    ASSERT_EQ(rows(i, 2), static_cast<std::int64_t>(i)) << "index " << i << " on rank " << context().rank();
    ASSERT_GE(rows(i, 0), 0);
  }
}

TEST_P(MpiMaps, PerWorkerArraysAreWholeOnEveryRankAfterMap) {
  auto partial = context().alloc<std::int64_t>({2}, {.fill = 0, .per_worker = true});
  const int n = 10'000;
  context().map(
      [&](int w, std::size_t, int v) {
        partial(w, 0) += v;
        partial(w, 1) += 1;
      },
      std::views::iota(0, n));
  std::int64_t sum = 0, count = 0;
  for (int w = 0; w < context().num_workers(); ++w) {
    sum += partial(w, 0);
    count += partial(w, 1);
  }
  EXPECT_EQ(count, n);
  EXPECT_EQ(sum, std::int64_t{n} * (n - 1) / 2);
}

TEST_P(MpiMaps, OnlyTheArraysAMapSaysItWritesAreMadeWhole) {
  constexpr std::size_t n = 10'000;
  // Both arrays have the map's length, so by default both are made whole after a map. The kernel
  // marks both, but says it writes `out` only: `scratch` keeps what its node wrote.
  auto scratch = context().alloc<int>(n, {.fill = 0});
  auto out = context().alloc<double>(n, {.fill = -1});
  const auto mark_both = [&](int, std::size_t i, int) {
    out[i] = static_cast<double>(i);
    scratch[i] = 1;
  };
  context().map(mark_both, std::views::iota(0, static_cast<int>(n)), {.writes = writes(out)});
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], static_cast<double>(i)) << "index " << i;
  const auto marked = std::count(scratch.begin(), scratch.end(), 1);
  if (context().num_nodes() > 1) {
    EXPECT_LT(marked, static_cast<std::ptrdiff_t>(n)) << "an array the map did not name was made whole";
  } else {
    EXPECT_EQ(marked, static_cast<std::ptrdiff_t>(n));
  }
  // Without .writes, both are.
  context().map(mark_both, std::views::iota(0, static_cast<int>(n)));
  EXPECT_EQ(std::count(scratch.begin(), scratch.end(), 1), static_cast<std::ptrdiff_t>(n));
  // pasha::writes() names none: `out` keeps what each node wrote.
  std::fill(out.begin(), out.end(), -1.0);
  MPI_Barrier(MPI_COMM_WORLD);
  context().map(mark_both, std::views::iota(0, static_cast<int>(n)), {.writes = writes()});
  const auto written = std::count_if(out.begin(), out.end(), [](double v) { return v >= 0; });
  EXPECT_EQ(written == static_cast<std::ptrdiff_t>(n), context().num_nodes() == 1);
}

TEST_P(MpiMaps, TheProgressReportCountsTheElementsOfEveryNode) {
  // Rank 0 reports; its last line counts every node's elements, not its own node's.
  char path[] = "/tmp/pasha_mpi_progress_XXXXXX";
  const int file = mkstemp(path);
  ASSERT_GE(file, 0);
  std::fflush(stderr);
  const int saved = dup(STDERR_FILENO);
  dup2(file, STDERR_FILENO);
  context().map([](int, std::size_t, int) {}, std::views::iota(0, 1000), {.progress = true});
  std::fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  close(file);
  unlink(path);
  if (context().rank() == 0) {
    EXPECT_THAT(text.substr(text.rfind("pasha: ")), HasSubstr("100%  1000/1000")) << text;
  } else {
    EXPECT_EQ(text, "");
  }
}

TEST_P(MpiMaps, TheDynamicScheduleVisitsEveryIndexOnceAcrossRanks) {
  constexpr std::size_t n = 5000;
  auto visits = context().alloc<int>(n, {.fill = 0});
  context().map([&](int, std::size_t i, int) { visits[i] += 1; }, std::views::iota(0, static_cast<int>(n)),
                {.schedule = Schedule::dynamic, .chunk = 7});
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(visits[i], 1) << "index " << i;
}

TEST_P(MpiMaps, AKernelThatThrowsOnOneRankFailsTheMapOnEveryRankPromptly) {
  const int n = 40 * context().num_workers();
  const int failing = context().num_workers() - 1;  // the last worker: on the last rank
  const auto start = std::chrono::steady_clock::now();
  try {
    context().map(
        [&](int w, std::size_t, int) {
          if (w == failing) throw std::runtime_error("broken on the last worker");
        },
        std::views::iota(0, n));
    FAIL() << "no exception on rank " << context().rank();
  } catch (const WorkerError& e) {
    EXPECT_EQ(e.worker_id(), failing);
    EXPECT_THAT(e.what(), HasSubstr("broken on the last worker"));
    EXPECT_THAT(e.what(), HasSubstr("worker " + std::to_string(failing)));
    try {
      std::rethrow_if_nested(e);
      ADD_FAILURE() << "nothing nested";
    } catch (const std::exception& cause) {
      EXPECT_THAT(cause.what(), HasSubstr("broken on the last worker"));
    }
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  // The context stays usable.
  auto out = context().alloc<int>(64, {.fill = 0});
  context().map([&](int, std::size_t i, int v) { out[i] = v + 1; }, std::views::iota(0, 64));
  for (std::size_t i = 0; i < 64; ++i) ASSERT_EQ(out[i], static_cast<int>(i) + 1);
}

TEST_P(MpiMaps, ArraysSaidToBeWrittenDifferentlyOnDifferentRanksAreInvalidArguments) {
  ASSERT_GT(context().num_ranks(), 1) << "needs a second rank to disagree with (the 1-rank target leaves it out)";
  auto a = context().alloc<double>(16, {.fill = 0});
  auto b = context().alloc<double>(16, {.fill = 0});
  try {
    context().map([&](int, std::size_t i, int) { a[i] = 1; }, std::views::iota(0, 16),
                  {.writes = context().rank() == 0 ? writes(a) : writes(b)});
    FAIL() << "no exception on rank " << context().rank();
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("arrays it writes"));
  }
  // Agreeing again, the context goes on.
  context().map([&](int, std::size_t i, int) { a[i] = 2; }, std::views::iota(0, 16), {.writes = writes(a)});
  EXPECT_EQ(std::count(a.begin(), a.end(), 2.0), 16);
}

TEST_P(MpiMaps, CollectionsOfDifferentSizesOnDifferentRanksAreInvalidArguments) {
  ASSERT_GT(context().num_ranks(), 1) << "needs a second rank to disagree with (the 1-rank target leaves it out)";
  const int n = 100 + (context().rank() == 0 ? 1 : 0);
  try {
    context().map([](int, std::size_t, int) {}, std::views::iota(0, n));
    FAIL() << "no exception on rank " << context().rank();
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("collection size"));
    EXPECT_THAT(e.what(), HasSubstr("100"));
    EXPECT_THAT(e.what(), HasSubstr("101"));
  }
  // Still usable, and in step.
  auto out = context().alloc<int>(8, {.fill = 0});
  context().map([&](int, std::size_t i, int) { out[i] = 1; }, std::views::iota(0, 8));
  EXPECT_EQ(std::accumulate(out.begin(), out.end(), 0), 8);
}

TEST_P(MpiMaps, ArraysOfDifferentShapesOnDifferentRanksAreInvalidArguments) {
  ASSERT_GT(context().num_ranks(), 1) << "needs a second rank to disagree with (the 1-rank target leaves it out)";
  // The same byte size, so that only the shape tells them apart.
  const Shape shape = context().rank() == 0 ? Shape{6, 2} : Shape{2, 6};
  try {
    auto a = context().alloc<double>(shape);
    FAIL() << "no exception on rank " << context().rank();
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("layout"));
    EXPECT_THAT(e.what(), HasSubstr("this rank's is shape " + shape.to_string()));
  }
  auto out = context().alloc<int>(6, {.fill = 0});
  context().map([&](int, std::size_t i, int) { out[i] = 1; }, std::views::iota(0, 6));
  EXPECT_EQ(std::accumulate(out.begin(), out.end(), 0), 6);
}

TEST_P(MpiMaps, AnAllocationNoNodeCanBackIsAnAllocationErrorOnEveryRank) {
  const std::size_t huge = std::size_t{1} << 60;
  try {
    auto a = context().alloc<char>(Shape{huge});
    FAIL() << "no exception on rank " << context().rank();
  } catch (const AllocationError& e) {
    EXPECT_THAT(e.what(), HasSubstr(std::to_string(huge)));
  }
  auto out = context().alloc<int>(6, {.fill = 0});  // still in step
  context().map([&](int, std::size_t i, int) { out[i] = 1; }, std::views::iota(0, 6));
  EXPECT_EQ(std::accumulate(out.begin(), out.end(), 0), 6);
}

TEST_P(MpiMaps, AWindowAlmostAsBigAsTheFreeSpaceOnANodeOfSeveralRanksIsAnAllocationError) {
  ASSERT_GT(context().num_ranks(), context().num_nodes())
      << "needs a node of several ranks (the targets without one leave this test out)";
  // Open MPI itself would refuse it on the node's leader only, and leave the node's other ranks
  // waiting inside MPI_Win_allocate_shared for ever. Its windows are backed by files in
  // osc_sm_backing_directory (the test's own folder, set by mpirun_test.sh).
  const std::string directory = OpenMpiSetting("osc_sm_backing_directory");
  ASSERT_FALSE(directory.empty());
  struct statvfs space {};
  ASSERT_EQ(::statvfs(directory.c_str(), &space), 0);
  std::uint64_t free_bytes = static_cast<std::uint64_t>(space.f_bavail) * space.f_frsize;
  MPI_Allreduce(MPI_IN_PLACE, &free_bytes, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
  const std::size_t almost = free_bytes - (std::size_t{1} << 20);
  try {
    auto a = context().alloc<char>(Shape{almost});
    FAIL() << "no exception on rank " << context().rank();
  } catch (const AllocationError& e) {
    EXPECT_THAT(e.what(), HasSubstr("cannot allocate " + std::to_string(almost)));
    // Ranks on a node of several ranks (rank 0 is, in every target that runs this test) say why.
    if (context().rank() == 0) {
      EXPECT_THAT(e.what(), HasSubstr(directory + " (where Open MPI backs shared windows) has"));
    }
  }
  auto out = context().alloc<int>(6, {.fill = 0});  // still in step
  context().map([&](int, std::size_t i, int) { out[i] = 1; }, std::views::iota(0, 6));
  EXPECT_EQ(std::accumulate(out.begin(), out.end(), 0), 6);
}

TEST_P(MpiMaps, AnFOrderArrayAlongTheMapIsWholeOnEveryRankAfterMap) {
  constexpr std::size_t n = 50;
  auto matrix = context().alloc<double>({n, 3, 2}, {.order = Order::F, .fill = -1});
  context().map(
      [&](int, std::size_t i, int) {
        for (std::size_t j = 0; j < 3; ++j) {
          for (std::size_t k = 0; k < 2; ++k) matrix(i, j, k) = static_cast<double>(100 * i + 10 * j + k);
        }
      },
      std::views::iota(0, static_cast<int>(n)));
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < 3; ++j) {
      for (std::size_t k = 0; k < 2; ++k) {
        ASSERT_EQ(matrix(i, j, k), static_cast<double>(100 * i + 10 * j + k))
            << "(" << i << ", " << j << ", " << k << ") on rank " << context().rank();
      }
    }
  }
}

// An indexed functor whose shares run backwards: no two of them make one ascending range.
struct BackwardShares {
  std::size_t n;
  std::size_t size() const { return n; }
  std::vector<IndexRange> split(int num_workers) const {
    std::vector<IndexRange> shares = split_evenly(n, 4 * num_workers);
    std::reverse(shares.begin(), shares.end());
    return shares;
  }
  template <class Visit>
  void iterate(const IndexRange& share, Visit&& visit) const {
    for (std::size_t i = share.begin; i < share.end; ++i) visit(i, static_cast<int>(i));
  }
};

TEST_P(MpiMaps, AnArrayThatCannotBeMadeWholeFailsTheMapBeforeAnyKernelRuns) {
  const std::size_t n = 8 * static_cast<std::size_t>(context().num_workers());
  auto out = context().alloc<int>(n, {.fill = 0});  // index-aligned, but each node's indices are scattered
  auto calls = context().alloc<int>({}, {.fill = 0, .per_worker = true});
  const auto map = [&] {
    context().map(
        [&](int w, std::size_t i, int) {
          out[i] = 1;
          calls[static_cast<std::size_t>(w)] += 1;
        },
        BackwardShares{n});
  };
  if (context().num_nodes() == 1) {
    map();  // one node: every rank shares the array, nothing to gather
    EXPECT_EQ(std::accumulate(out.begin(), out.end(), 0), static_cast<int>(n));
    return;
  }
  try {
    map();
    FAIL() << "no exception on rank " << context().rank();
  } catch (const std::logic_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("cannot be made whole"));
  }
  EXPECT_EQ(std::accumulate(calls.begin(), calls.end(), 0), 0) << "kernels ran before the map failed";
  EXPECT_EQ(std::accumulate(out.begin(), out.end(), 0), 0);
}

TEST_P(MpiMaps, XfelTrainsAreSplitAcrossRanksEachOpeningItsOwnFiles) {
  // Rank 0 writes the run into the test's temporary directory, which every rank sees.
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/mpi_run_" + context().local().name();
  xfel::mock::RunSpec spec;
  spec.num_trains = 48;
  if (WorldRank() == 0) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    xfel::mock::write_run(dir, spec);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  const auto run = xfel::RunDirectory(dir);
  const auto kd = run.key_data<std::uint16_t>(xfel::mock::kCameraOutput, "data.image.pixels");
  auto sums = context().alloc<std::uint64_t>(kd.size(), {.fill = 0});
  auto pids = context().alloc<std::int64_t>(kd.size(), {.fill = 0});
  context().map(
      [&](int, std::size_t i, std::uint64_t, Array<std::uint16_t> rows) {
        std::uint64_t sum = 0;
        for (std::uint16_t v : rows) sum += v;
        sums[i] = sum;
        pids[i] = getpid();
      },
      kd);
  for (std::size_t i = 0; i < kd.size(); ++i) {
    const std::uint64_t tid = kd.train_ids()[i];
    std::uint64_t expected = 0;
    for (std::uint64_t f = 0; f < xfel::mock::camera_count(tid); ++f) {
      for (std::size_t e = 0; e < spec.image_height * spec.image_width; ++e) expected += xfel::mock::camera_pixel(tid, f, e);
    }
    ASSERT_EQ(sums[i], expected) << "train " << tid;
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

// "mpi_over_threads_4_workers": the local context's kind and the total worker count.
struct MpiContextName {
  std::string operator()(const ::testing::TestParamInfo<conformance::ContextFactory>& info) const {
    const auto context = std::dynamic_pointer_cast<MpiContext>(info.param());
    return "mpi_over_" + context->local().name() + "_" + std::to_string(context->num_workers()) + "_workers";
  }
};

INSTANTIATE_TEST_SUITE_P(LocalContexts, MpiMaps, ::testing::ValuesIn(MpiContexts()), MpiContextName{});

// Run only by rank_death_test.sh (PASHA_TEST_KILL_RANK set): that rank kills itself mid-map, while
// the others are in the map's collectives; the job must end, not hang.
TEST(MpiFaults, ARankKilledMidMapEndsTheJob) {
  const char* victim = std::getenv("PASHA_TEST_KILL_RANK");
  ASSERT_NE(victim, nullptr) << "run by rank_death_test.sh only (the other targets filter it out)";
  MpiContext context(std::make_shared<ProcessContext>(2));
  auto out = context.alloc<int>(1000, {.fill = 0});
  const bool i_die = WorldRank() == std::atoi(victim);
  context.map([&](int, std::size_t i, int) {
    out[i] = 1;
    if (i_die && i % 100 == 50) ::kill(getppid(), SIGKILL);  // the rank itself, from its worker process
  }, std::views::iota(0, 1000));
  ADD_FAILURE() << "the map returned on rank " << WorldRank();
}

TEST(MpiContextSetUp, ANullLocalContextIsAnInvalidArgument) {
  EXPECT_THROW(MpiContext(std::shared_ptr<Context>()), std::invalid_argument);
}

// Mappings of Open MPI's shared-window files (they live in the test's TEST_TMPDIR).
std::size_t SharedWindowMappings() {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::ifstream maps("/proc/self/maps");
  std::size_t n = 0;
  for (std::string line; std::getline(maps, line);) n += dir != nullptr && line.find(dir) != std::string::npos;
  return n;
}

// Ranks drop arrays in different orders, one of them from another thread: nothing waits for the
// others, and every array's memory is freed by a later map once all ranks have dropped it.
TEST(MpiContextSetUp, ArraysDroppedInAnyOrderOnEachRankAreFreedAtALaterCollective) {
  MpiContext context(std::make_shared<ThreadContext>(2));
  const std::size_t before = SharedWindowMappings();
  std::vector<std::unique_ptr<Array<double>>> arrays;
  for (int a = 0; a < 3; ++a) arrays.push_back(std::make_unique<Array<double>>(context.alloc<double>(4096)));
  if (WorldRank() % 2 == 0) {
    arrays[0].reset();
    arrays[1].reset();
    std::thread([&] { arrays[2].reset(); }).join();
  } else {
    std::thread([&] { arrays[2].reset(); }).join();
    arrays[1].reset();
    arrays[0].reset();
  }
  context.map([](int, std::size_t, int) {}, std::views::iota(0, 4));
  EXPECT_LE(SharedWindowMappings(), before);
  auto out = context.alloc<int>(16, {.fill = 0});
  context.map([&](int, std::size_t i, int v) { out[i] = v; }, std::views::iota(0, 16));
  for (std::size_t i = 0; i < 16; ++i) EXPECT_EQ(out[i], static_cast<int>(i));
}

// What an interpreter at exit needs: after release_all, contexts and arrays may go in any order on
// any rank (here: opposite orders on odd and even ranks) without MPI, so without a hang.
TEST(MpiContextSetUp, AfterReleaseAllContextsAndArraysGoInAnyOrderWithoutMpi) {
  auto context = std::make_shared<MpiContext>(std::make_shared<ThreadContext>(2));
  auto first = std::make_unique<Array<double>>(context->alloc<double>(1000, {.fill = 1}));
  auto second = std::make_unique<Array<double>>(context->alloc<double>(10, {.per_worker = true}));
  MpiContext::release_all();
  if (WorldRank() % 2 == 0) {
    first.reset();
    second.reset();
    context.reset();
  } else {
    context.reset();
    second.reset();
    first.reset();
  }
  MpiContext again(std::make_shared<SerialContext>());  // a context made after works as ever
  auto out = again.alloc<int>(8, {.fill = 0});
  again.map([&](int, std::size_t i, int v) { out[i] = v * 2; }, std::views::iota(0, 8));
  for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(out[i], 2 * static_cast<int>(i));
}

// A forked child (a user's own fork, or a local worker's garbage collector) that drops a context and
// its arrays calls no MPI: it exits at once, and the parent's context works on.
TEST(MpiContextSetUp, AForkedChildThatDropsAContextAndItsArraysCallsNoMpi) {
  auto context = std::make_shared<MpiContext>(std::make_shared<ThreadContext>(2));
  auto array = std::make_unique<Array<int>>(context->alloc<int>(64, {.fill = 3}));
  std::fflush(nullptr);
  const pid_t child = fork();
  if (child == 0) {
    alarm(20);  // an MPI call here would hang: SIGALRM ends it and the status says so
    array.reset();
    context.reset();
    _exit(0);
  }
  int status = -1;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  context->map([&](int, std::size_t i, int) { (*array)[i] += 1; }, std::views::iota(0, 64));
  EXPECT_EQ(std::count(array->begin(), array->end(), 4), 64);
}

}  // namespace
}  // namespace pasha

namespace pasha::conformance {
INSTANTIATE_TEST_SUITE_P(Mpi, ContextConformance, ::testing::ValuesIn(MpiContexts()), MpiContextName{});
INSTANTIATE_TEST_SUITE_P(Mpi, SingleCallerConformance, ::testing::ValuesIn(MpiContexts()), MpiContextName{});
}  // namespace pasha::conformance

// MPI is initialised before the tests are registered (the conformance names come from contexts,
// which are collective) and finalised after all have run.
int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  ::testing::InitGoogleTest(&argc, argv);
  const int result = RUN_ALL_TESTS();
  int worst = 0;
  MPI_Allreduce(&result, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
