#include "contexts/common/binding.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hwloc.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>

namespace pasha {
namespace {

using ::testing::HasSubstr;

// Two packages, two NUMA nodes each, four cores per NUMA node, two PUs per core: core c holds PUs
// 2c and 2c+1; NUMA node n holds cores 4n .. 4n+3; package p holds NUMA nodes 2p and 2p+1.
constexpr const char* kTwoSocketMachine = "pack:2 numa:2 core:4 pu:2";

std::string pus_of_core(int core) { return std::to_string(2 * core) + "-" + std::to_string(2 * core + 1); }

struct BitmapDeleter {
  void operator()(hwloc_bitmap_t bitmap) const { hwloc_bitmap_free(bitmap); }
};
using Bitmap = std::unique_ptr<hwloc_bitmap_s, BitmapDeleter>;

Bitmap parse_list(const std::string& list) {
  Bitmap bitmap(hwloc_bitmap_alloc());
  EXPECT_EQ(hwloc_bitmap_list_sscanf(bitmap.get(), list.c_str()), 0) << list;
  return bitmap;
}

// The CPUs the calling thread may run on, straight from the kernel.
Bitmap affinity_of_this_thread() {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  Bitmap bitmap(hwloc_bitmap_alloc());
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) hwloc_bitmap_set(bitmap.get(), static_cast<unsigned>(cpu));
  }
  return bitmap;
}

TEST(BindingPlanTest, CompactFillsTheCoresOfTheFirstNumaNodeOfTheFirstPackageFirst) {
  const auto plan = BindingPlan::for_synthetic_topology(kTwoSocketMachine, 16, Binding::compact);
  ASSERT_EQ(plan.num_workers(), 16);
  EXPECT_EQ(plan.policy(), Binding::compact);
  EXPECT_EQ(plan.num_cores(), 16);
  for (int w = 0; w < 16; ++w) EXPECT_EQ(plan.cpuset(w), pus_of_core(w)) << "worker " << w;
  const std::string description = plan.describe();
  EXPECT_THAT(description, HasSubstr("worker 0: cpuset 0-1 (core L#0, package L#0, NUMA L#0)\n"));
  EXPECT_THAT(description, HasSubstr("worker 3: cpuset 6-7 (core L#3, package L#0, NUMA L#0)\n"));
  EXPECT_THAT(description, HasSubstr("worker 4: cpuset 8-9 (core L#4, package L#0, NUMA L#1)\n"));
  EXPECT_THAT(description, HasSubstr("worker 8: cpuset 16-17 (core L#8, package L#1, NUMA L#2)\n"));
  EXPECT_THAT(description, HasSubstr("worker 15: cpuset 30-31 (core L#15, package L#1, NUMA L#3)\n"));
}

TEST(BindingPlanTest, SpreadAlternatesPackagesThenNumaNodesBeforeFillingCores) {
  const auto plan = BindingPlan::for_synthetic_topology(kTwoSocketMachine, 16, Binding::spread);
  // Package 0 NUMA 0, package 1 NUMA 2, package 0 NUMA 1, package 1 NUMA 3, then the next core of each.
  const int expected_cores[16] = {0, 8, 4, 12, 1, 9, 5, 13, 2, 10, 6, 14, 3, 11, 7, 15};
  for (int w = 0; w < 16; ++w) EXPECT_EQ(plan.cpuset(w), pus_of_core(expected_cores[w])) << "worker " << w;
  const std::string description = plan.describe();
  EXPECT_THAT(description, HasSubstr("worker 0: cpuset 0-1 (core L#0, package L#0, NUMA L#0)\n"));
  EXPECT_THAT(description, HasSubstr("worker 1: cpuset 16-17 (core L#8, package L#1, NUMA L#2)\n"));
  EXPECT_THAT(description, HasSubstr("worker 2: cpuset 8-9 (core L#4, package L#0, NUMA L#1)\n"));
  EXPECT_THAT(description, HasSubstr("worker 3: cpuset 24-25 (core L#12, package L#1, NUMA L#3)\n"));
}

TEST(BindingPlanTest, EveryCoreGetsOneWorkerBeforeAnyCoreGetsTwo) {
  for (Binding policy : {Binding::compact, Binding::spread}) {
    const auto plan = BindingPlan::for_synthetic_topology(kTwoSocketMachine, 16, policy);
    std::set<std::string> cpusets;
    for (int w = 0; w < 16; ++w) cpusets.insert(plan.cpuset(w));
    EXPECT_EQ(cpusets.size(), 16u) << to_string(policy);
  }
}

TEST(BindingPlanTest, WorkersBeyondTheCoreCountWrapAround) {
  for (Binding policy : {Binding::compact, Binding::spread}) {
    const auto plan = BindingPlan::for_synthetic_topology(kTwoSocketMachine, 40, policy);
    ASSERT_EQ(plan.num_workers(), 40);
    for (int w = 16; w < 40; ++w) EXPECT_EQ(plan.cpuset(w), plan.cpuset(w % 16)) << to_string(policy) << " " << w;
  }
}

TEST(BindingPlanTest, AWorkerGetsEveryPuOfItsCore) {
  const auto plan = BindingPlan::for_synthetic_topology("pack:1 core:2 pu:4", 2, Binding::compact);
  EXPECT_EQ(plan.cpuset(0), "0-3");
  EXPECT_EQ(plan.cpuset(1), "4-7");
}

TEST(BindingPlanTest, WithoutCoresInTheTopologyWorkersAreBoundToPus) {
  const auto plan = BindingPlan::for_synthetic_topology("pack:2 pu:2", 4, Binding::spread);
  EXPECT_EQ(plan.num_cores(), 4);
  EXPECT_EQ(plan.cpuset(0), "0");
  EXPECT_EQ(plan.cpuset(1), "2");
  EXPECT_EQ(plan.cpuset(2), "1");
  EXPECT_EQ(plan.cpuset(3), "3");
  EXPECT_THAT(plan.describe(), HasSubstr("worker 1: cpuset 2 (PU L#2, package L#1, NUMA L#0)\n"));
}

TEST(BindingPlanTest, NoneLeavesEveryWorkerTheWholeAllowedSet) {
  const auto plan = BindingPlan::for_synthetic_topology(kTwoSocketMachine, 3, Binding::none);
  for (int w = 0; w < 3; ++w) EXPECT_EQ(plan.cpuset(w), "0-31");
  EXPECT_EQ(plan.allowed_cpuset(), "0-31");
  EXPECT_THAT(plan.describe(), HasSubstr("worker 2: cpuset 0-31 (not bound)\n"));
}

TEST(BindingPlanTest, ASyntheticPlanCannotBindThisThread) {
  const auto plan = BindingPlan::for_synthetic_topology(kTwoSocketMachine, 2, Binding::compact);
  EXPECT_FALSE(plan.bind_this_thread(0));
}

TEST(BindingPlanTest, ARejectedSyntheticDescriptionIsInvalidArgumentNamingIt) {
  try {
    BindingPlan::for_synthetic_topology("pack:2 bogus:3", 2, Binding::compact);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("pack:2 bogus:3"));
  }
}

TEST(BindingPlanTest, FewerThanOneWorkerIsInvalidArgument) {
  EXPECT_THROW(BindingPlan::for_synthetic_topology(kTwoSocketMachine, 0, Binding::compact), std::invalid_argument);
  EXPECT_THROW(BindingPlan::for_this_process(-1, Binding::compact), std::invalid_argument);
}

TEST(BindingPlanTest, TheCpusetOfAWorkerIdOutOfRangeIsOutOfRange) {
  const auto plan = BindingPlan::for_synthetic_topology(kTwoSocketMachine, 2, Binding::compact);
  EXPECT_THROW(plan.cpuset(2), std::out_of_range);
  EXPECT_THROW(plan.cpuset(-1), std::out_of_range);
  EXPECT_FALSE(plan.bind_this_thread(2));
}

TEST(BindingPlanTest, PolicyNamesRoundTripAndUnknownNamesAreInvalidArgument) {
  for (Binding policy : {Binding::none, Binding::compact, Binding::spread}) {
    EXPECT_EQ(parse_binding(to_string(policy)), policy);
  }
  EXPECT_THROW(parse_binding("tight"), std::invalid_argument);
}

// --- This machine ---------------------------------------------------------------------------------

TEST(BindingPlanTest, ThisProcessesPlanHasOneCpusetPerWorkerWithinTheAllowedCpus) {
  const Bitmap allowed = affinity_of_this_thread();
  for (Binding policy : {Binding::compact, Binding::spread, Binding::none}) {
    const auto plan = BindingPlan::for_this_process(5, policy);
    ASSERT_EQ(plan.num_workers(), 5);
    for (int w = 0; w < 5; ++w) {
      const Bitmap cpuset = parse_list(plan.cpuset(w));
      EXPECT_FALSE(hwloc_bitmap_iszero(cpuset.get())) << to_string(policy) << " worker " << w;
      EXPECT_TRUE(hwloc_bitmap_isincluded(cpuset.get(), allowed.get())) << to_string(policy) << " worker " << w;
    }
  }
}

TEST(BindingPlanTest, DefaultWorkerCountIsTheNumberOfAllowedCoresAndAtLeastOne) {
  const int workers = default_num_workers();
  EXPECT_GE(workers, 1);
  EXPECT_LE(workers, hwloc_bitmap_weight(affinity_of_this_thread().get()));
  EXPECT_EQ(workers, BindingPlan::for_this_process(1, Binding::compact).num_cores());
}

TEST(BindingPlanTest, ARestrictedAffinityRestrictsThePlanAndTheDefaultWorkerCount) {
  // In a child process, so that the test process keeps its affinity: allow only the last CPU.
  const Bitmap allowed = affinity_of_this_thread();
  const int last_cpu = hwloc_bitmap_last(allowed.get());
  ASSERT_GE(last_cpu, 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(last_cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) _exit(10);
    if (default_num_workers() != 1) _exit(11);
    const auto plan = BindingPlan::for_this_process(2, Binding::compact);
    const std::string only = std::to_string(last_cpu);
    if (plan.allowed_cpuset() != only) _exit(12);
    if (plan.cpuset(0) != only || plan.cpuset(1) != only) _exit(13);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: setaffinity failed, 11: default_num_workers, 12: allowed_cpuset, "
                                       "13: worker cpusets";
}

TEST(BindingPlanTest, ABoundThreadRunsWithinItsWorkersCpuset) {
  const auto plan = BindingPlan::for_this_process(2, Binding::compact);
  for (int w = 0; w < 2; ++w) {
    bool bound = false;
    Bitmap affinity;
    int cpu = -1;
    std::thread thread([&] {
      bound = plan.bind_this_thread(w);
      affinity = affinity_of_this_thread();
      cpu = sched_getcpu();
    });
    thread.join();
    ASSERT_TRUE(bound) << "worker " << w;
    const Bitmap cpuset = parse_list(plan.cpuset(w));
    EXPECT_TRUE(hwloc_bitmap_isequal(affinity.get(), cpuset.get())) << "worker " << w;
    EXPECT_TRUE(hwloc_bitmap_isset(cpuset.get(), static_cast<unsigned>(cpu))) << "worker " << w << " on " << cpu;
  }
}

}  // namespace
}  // namespace pasha
