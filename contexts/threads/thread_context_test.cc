#include "contexts/threads/thread_context.h"

#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <climits>
#include <cstdint>
#include <numeric>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "functors/ndarray/ndarray.h"
#include "functors/sequence/sequence.h"
#include "pasha/core/errors.h"

namespace pasha {
namespace {

// The number of threads of this process.
int thread_count() {
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  int count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count;
}

// The calling thread's affinity as hwloc prints lists ("0", "2-3", "0,2-5").
std::string affinity_list() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return "error";
  std::string list;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    int last = cpu;
    while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, &set)) ++last;
    if (!list.empty()) list += ",";
    list += std::to_string(cpu);
    if (last > cpu) list += "-" + std::to_string(last);
    cpu = last;
  }
  return list;
}

bool cpu_in_list(int cpu, const std::string& list) {
  std::size_t pos = 0;
  while (pos < list.size()) {
    const std::size_t comma = std::min(list.find(',', pos), list.size());
    const std::string range = list.substr(pos, comma - pos);
    const std::size_t dash = range.find('-');
    const int first = std::stoi(range.substr(0, dash));
    const int last = dash == std::string::npos ? first : std::stoi(range.substr(dash + 1));
    if (first <= cpu && cpu <= last) return true;
    pos = comma + 1;
  }
  return false;
}

bool thread_is_listed(pid_t tid) {
  return access(("/proc/self/task/" + std::to_string(tid)).c_str(), F_OK) == 0;
}

// The thread count once it equals `expected`, or after 5 s: /proc lists a thread a moment after
// join returned, until the kernel has reaped it.
int thread_count_once(int expected) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (thread_count() != expected && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return thread_count();
}

// The thread count to compare against, once helper threads that start with the first thread of the
// process (ThreadSanitizer's background thread) exist and a joined thread is gone from /proc.
int baseline_thread_count() {
  pid_t tid = 0;
  std::thread([&] { tid = static_cast<pid_t>(syscall(SYS_gettid)); }).join();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (thread_is_listed(tid) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return thread_count();
}

double process_cpu_seconds() {
  timespec time{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time);
  return static_cast<double>(time.tv_sec) + 1e-9 * static_cast<double>(time.tv_nsec);
}

TEST(ThreadContextTest, DefaultWorkerCountIsDefaultNumWorkersAndAtLeastOne) {
  ThreadContext context;
  EXPECT_EQ(context.num_workers(), default_num_workers());
  EXPECT_GE(context.num_workers(), 1);
  EXPECT_EQ(context.name(), "threads");
  EXPECT_EQ(context.binding_plan().policy(), Binding::compact);
}

TEST(ThreadContextTest, ConstructorRejectsZeroNegativeAndHugeWorkerCounts) {
  for (int workers : {0, -1, kMaxWorkers + 1, INT_MAX}) {
    EXPECT_THROW(ThreadContext{workers}, std::invalid_argument) << workers;
  }
}

TEST(ThreadContextTest, PoolThreadsAreCreatedOnFirstMapOnceAndReusedByEveryMap) {
  const int before = baseline_thread_count();
  constexpr int kWorkers = 3;
  constexpr int kMaps = 5;
  ThreadContext context(kWorkers);
  EXPECT_EQ(thread_count(), before) << "no thread before the first map";
  std::vector<std::vector<std::thread::id>> ids(kMaps, std::vector<std::thread::id>(kWorkers));
  for (int map = 0; map < kMaps; ++map) {
    context.map([&](int w, std::size_t, int) { ids[map][static_cast<std::size_t>(w)] = std::this_thread::get_id(); },
                std::views::iota(0, kWorkers * 100));
    EXPECT_EQ(thread_count_once(before + kWorkers - 1), before + kWorkers - 1) << "after map " << map;
  }
  EXPECT_EQ(ids[0][0], std::this_thread::get_id()) << "worker 0 is the calling thread";
  EXPECT_EQ(std::set<std::thread::id>(ids[0].begin(), ids[0].end()).size(), static_cast<std::size_t>(kWorkers));
  for (int map = 1; map < kMaps; ++map) EXPECT_EQ(ids[map], ids[0]) << "map " << map;
}

TEST(ThreadContextTest, DestroyingAContextWithAStartedPoolJoinsItsThreads) {
  const int before = baseline_thread_count();
  {
    ThreadContext context(4);
    context.map([](int, std::size_t, int) {}, std::views::iota(0, 4));
    EXPECT_EQ(thread_count_once(before + 3), before + 3);
  }
  EXPECT_EQ(thread_count_once(before), before);
  { ThreadContext never_used(4); }
  EXPECT_EQ(thread_count(), before);
}

TEST(ThreadContextTest, BindingIsThePlansCpusetAndPoolWorkersRunThere) {
  for (Binding policy : {Binding::compact, Binding::spread, Binding::none}) {
    for (int workers : {default_num_workers(), 7}) {
      SCOPED_TRACE(to_string(policy) + ", " + std::to_string(workers) + " workers");
      ThreadContext context(workers, policy);
      ASSERT_EQ(context.binding_plan().num_workers(), workers);
      std::vector<std::string> affinity(static_cast<std::size_t>(workers));
      std::vector<int> cpus(static_cast<std::size_t>(workers), -1);
      context.map(
          [&](int w, std::size_t, int) {
            affinity[static_cast<std::size_t>(w)] = affinity_list();
            cpus[static_cast<std::size_t>(w)] = sched_getcpu();
          },
          std::views::iota(0, workers));
      for (int w = 0; w < workers; ++w) {
        const auto i = static_cast<std::size_t>(w);
        EXPECT_EQ(context.binding(w), context.binding_plan().cpuset(w)) << "worker " << w;
        if (w == 0) continue;  // the calling thread, never re-bound
        EXPECT_EQ(affinity[i], context.binding(w)) << "worker " << w;
        EXPECT_TRUE(cpu_in_list(cpus[i], context.binding(w))) << "worker " << w << " ran on CPU " << cpus[i];
      }
    }
  }
}

TEST(ThreadContextTest, TheCallingThreadKeepsItsOwnAffinity) {
  const std::string before = affinity_list();
  ThreadContext context(2, Binding::compact);
  context.map([](int, std::size_t, int) {}, std::views::iota(0, 10));
  EXPECT_EQ(affinity_list(), before);
}

TEST(ThreadContextTest, BindingOfAWorkerIdOutOfRangeIsOutOfRange) {
  ThreadContext context(2);
  EXPECT_THROW(context.binding(2), std::out_of_range);
  EXPECT_THROW(context.binding(-1), std::out_of_range);
}

TEST(ThreadContextTest, IdleWorkersDoNotBurnCpu) {
  ThreadContext context(std::max(2, default_num_workers()));
  auto out = context.alloc<double>(100'000);
  context.map([&](int, std::size_t i, int v) { out[i] = 2.0 * v; }, std::views::iota(0, 100'000));
  const double cpu_before = process_cpu_seconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const double burnt = process_cpu_seconds() - cpu_before;
  EXPECT_LT(burnt, 0.1) << "CPU seconds used by an idle context over 0.3 s";
}

TEST(ThreadContextTest, TwoUserThreadsMappingAtOnceBothGetCorrectResults) {
  ThreadContext context(3);
  constexpr int kSize = 10'000;
  constexpr int kMaps = 50;
  auto user = [&](int factor, int& failures) {
    auto out = context.alloc<std::int64_t>(kSize);
    for (int map = 0; map < kMaps; ++map) {
      context.map([&](int, std::size_t i, int v) { out[i] = std::int64_t{factor} * v + map; },
                  std::views::iota(0, kSize));
      for (int i = 0; i < kSize; ++i) {
        if (out[static_cast<std::size_t>(i)] != std::int64_t{factor} * i + map) ++failures;
      }
    }
  };
  int failures_a = 0;
  int failures_b = 0;
  std::thread a(user, 2, std::ref(failures_a));
  std::thread b(user, 3, std::ref(failures_b));
  a.join();
  b.join();
  EXPECT_EQ(failures_a, 0);
  EXPECT_EQ(failures_b, 0);
}

TEST(ThreadContextTest, AMapInsideAKernelRunsInlineOnTheSameThread) {
  ThreadContext context(3);
  auto same_thread = context.alloc<int>({6, 4}, {.fill = 0});
  context.map(
      [&](int, std::size_t outer, int) {
        const auto outer_thread = std::this_thread::get_id();
        context.map([&](int, std::size_t inner,
                        int) { same_thread(outer, inner) = std::this_thread::get_id() == outer_thread ? 1 : 0; },
                    std::views::iota(0, 4));
      },
      std::views::iota(0, 6));
  for (std::size_t i = 0; i < 6; ++i)
    for (std::size_t j = 0; j < 4; ++j) EXPECT_EQ(same_thread(i, j), 1) << i << ", " << j;
}

TEST(ThreadContextTest, MoreWorkersThanCoresWork) {
  for (int workers : {7, 64}) {
    ThreadContext context(workers);
    const std::size_t n = 100'000;
    auto out = context.alloc<std::int64_t>(n, {.fill = -1});
    auto per_worker = context.alloc<std::int64_t>({}, {.fill = 0, .per_worker = true});
    for (int map = 0; map < 3; ++map) {
      context.map(
          [&](int w, std::size_t i, int v) {
            out[i] = 3 * std::int64_t{v};
            per_worker[static_cast<std::size_t>(w)] += 1;
          },
          std::views::iota(0, static_cast<int>(n)));
    }
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], 3 * static_cast<std::int64_t>(i)) << workers << " workers";
    EXPECT_EQ(std::accumulate(per_worker.begin(), per_worker.end(), std::int64_t{0}), 3 * static_cast<std::int64_t>(n));
    for (int w = 0; w < workers; ++w) EXPECT_GT(per_worker[static_cast<std::size_t>(w)], 0) << "worker " << w;
  }
}

TEST(ThreadContextTest, AFailedMapLeavesThePoolUsableWithTheSameThreads) {
  ThreadContext context(3);
  std::vector<std::thread::id> ids(3);
  context.map([&](int w, std::size_t, int) { ids[static_cast<std::size_t>(w)] = std::this_thread::get_id(); },
              std::views::iota(0, 3));
  try {
    context.map([](int w, std::size_t, int) {
      if (w == 2) throw std::out_of_range("worker two");
    }, std::views::iota(0, 30));
    FAIL() << "no exception";
  } catch (const WorkerError& e) {
    EXPECT_EQ(e.worker_id(), 2);
    EXPECT_THROW(std::rethrow_if_nested(e), std::out_of_range);
  }
  std::vector<std::thread::id> after(3);
  context.map([&](int w, std::size_t, int) { after[static_cast<std::size_t>(w)] = std::this_thread::get_id(); },
              std::views::iota(0, 3));
  EXPECT_EQ(after, ids);
}

// How many of the pages of `bytes` at `data` are in memory, and how many pages that is.
std::pair<std::size_t, std::size_t> resident_pages(const void* data, std::size_t bytes) {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const auto address = reinterpret_cast<std::uintptr_t>(data);
  const std::uintptr_t first_page = (address + page - 1) / page * page;
  const std::size_t pages = (address + bytes - first_page) / page;
  std::vector<unsigned char> resident(pages);
  EXPECT_EQ(mincore(reinterpret_cast<void*>(first_page), pages * page, resident.data()), 0);
  std::size_t in_memory = 0;
  for (unsigned char r : resident) in_memory += r & 1;
  return {in_memory, pages};
}

int numa_nodes_of_this_machine() {
  int nodes = 0;
  for (int node = 0; access(("/sys/devices/system/node/node" + std::to_string(node)).c_str(), F_OK) == 0; ++node) {
    ++nodes;
  }
  return std::max(nodes, 1);
}

TEST(ThreadContextTest, LargeArraysAreTouchedFirstByTheWorkersWhenAskedOrAcrossNumaNodes) {
  constexpr std::size_t kBytes = std::size_t{16} << 20;
  ThreadContext asked(2, Binding::compact, FirstTouch::always);
  auto touched = asked.alloc<unsigned char>(kBytes);
  const auto [in_memory, pages] = resident_pages(touched.data(), kBytes);
  EXPECT_EQ(in_memory, pages);
  ThreadContext by_default(2);
  auto fresh = by_default.alloc<unsigned char>(kBytes);
  if (numa_nodes_of_this_machine() == 1) {
    EXPECT_EQ(resident_pages(fresh.data(), kBytes).first, 0U);
  }
  ThreadContext never(2, Binding::compact, FirstTouch::never);
  EXPECT_EQ(resident_pages(never.alloc<unsigned char>(kBytes).data(), kBytes).first, 0U);
  EXPECT_EQ(parse_first_touch("numa"), FirstTouch::numa_nodes);
  EXPECT_THROW(parse_first_touch("sometimes"), std::invalid_argument);
}

TEST(ThreadContextTest, AFillOfZerosOnALargeArrayTouchesNoPageAndOtherFillsAreWritten) {
  constexpr std::size_t kCount = std::size_t{2} << 20;  // 16 MiB of doubles
  ThreadContext context(2, Binding::compact, FirstTouch::never);
  auto zeros = context.alloc<double>({kCount}, {.fill = 0.0});
  EXPECT_EQ(resident_pages(zeros.data(), kCount * sizeof(double)).first, 0U);
  EXPECT_TRUE(std::all_of(zeros.begin(), zeros.end(), [](double x) { return x == 0.0; }));
  auto negative_zeros = context.alloc<double>({kCount}, {.fill = -0.0});
  EXPECT_TRUE(std::all_of(negative_zeros.begin(), negative_zeros.end(), [](double x) { return std::signbit(x); }));
  // Small arrays come from the heap, which may hold what an earlier array left: written.
  for (int round = 0; round < 3; ++round) {
    auto small = context.alloc<int>({64}, {.fill = 0});
    EXPECT_TRUE(std::all_of(small.begin(), small.end(), [](int x) { return x == 0; }));
    std::fill(small.begin(), small.end(), 7);
  }
}

TEST(ThreadContextTest, AllocatingALargeArrayInsideAKernelWorks) {
  ThreadContext context(2);
  auto sums = context.alloc<double>({}, {.fill = 0, .per_worker = true});
  context.map(
      [&](int w, std::size_t, int) {
        auto scratch = context.alloc<double>(std::size_t{1} << 20, {.fill = 1.0});
        sums[static_cast<std::size_t>(w)] += std::accumulate(scratch.begin(), scratch.end(), 0.0);
      },
      std::views::iota(0, 2));
  EXPECT_EQ(sums[0] + sums[1], 2.0 * (1 << 20));
}

}  // namespace
}  // namespace pasha
