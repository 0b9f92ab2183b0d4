// Fault injection: pasha survives what long runs throw at it. After every failure, map has thrown the
// right WorkerError within a bounded time, no child process is left, no file descriptor has leaked, and
// the next map on the same context works.
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "conformance/pasha_contexts.h"
#include "conformance/process_probes.h"
#include "pasha/pasha.h"

namespace pasha::conformance {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// Generous: a failed map must report within this time, however many workers were still busy.
constexpr auto kReportWithin = std::chrono::seconds(20);

// The WorkerError a map threw, with how long the map took; fails the test if there was none.
struct Failure {
  int worker_id = -1;
  std::string what;
  std::string nested_what;
  std::string nested_type;  // RemoteError::type_name() when the cause is a RemoteError
  Clock::duration took{};
};

template <class Kernel, class Source>
Failure ExpectWorkerError(Context& context, Kernel&& kernel, Source&& source) {
  Failure failure;
  const auto start = Clock::now();
  try {
    context.map(std::forward<Kernel>(kernel), std::forward<Source>(source));
    ADD_FAILURE() << "map did not throw";
  } catch (const WorkerError& e) {
    failure.worker_id = e.worker_id();
    failure.what = e.what();
    try {
      std::rethrow_if_nested(e);
    } catch (const RemoteError& cause) {
      failure.nested_what = cause.what();
      failure.nested_type = cause.type_name();
    } catch (const std::exception& cause) {
      failure.nested_what = cause.what();
    } catch (...) {
      failure.nested_what = "(not a std::exception)";
    }
  }
  failure.took = Clock::now() - start;
  EXPECT_LT(failure.took, kReportWithin) << "the failure was not reported promptly";
  return failure;
}

// A snapshot once the context has no worker processes still exiting from an earlier map (a process
// map returns before its workers have exited; it reaps them at the next map, or when asked).
ResourceSnapshot Settled(Context& context) {
  if (auto* processes = dynamic_cast<ProcessContext*>(&context)) processes->wait_for_exited_workers();
  return ResourceSnapshot::take();
}

// Checks the aftermath of a failure: nothing left behind (a failed map reaps all its workers before
// it throws), and the context still maps correctly.
void ExpectCleanAndUsable(Context& context, const ResourceSnapshot& before) {
  const ResourceSnapshot after = ResourceSnapshot::take();
  EXPECT_EQ(after.fds, before.fds) << "file descriptors leaked";
  EXPECT_EQ(after.children, 0u) << "child processes left behind";
  auto out = context.alloc<int>(64, {.fill = 0});
  context.map([&](int, std::size_t i, int v) { out[i] = v * 2; }, std::views::iota(0, 64));
  for (std::size_t i = 0; i < 64; ++i) ASSERT_EQ(out[i], 2 * static_cast<int>(i)) << "the next map failed";
}

// Counts one more worker in `counter` (memory every worker reaches).
void Arrive(std::int64_t& counter) { std::atomic_ref<std::int64_t>(counter).fetch_add(1); }

// Waits until `counter` reaches `expected`: the state a test needs before it goes on. The deadline only
// turns a hang into a failure.
void WaitUntilCounted(std::int64_t& counter, std::int64_t expected) {
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (std::atomic_ref<std::int64_t>(counter).load() < expected) {
    if (Clock::now() > deadline) throw std::runtime_error("the other workers never arrived (a hang)");
    std::this_thread::yield();
  }
}

int OwnerOf(std::size_t index, std::size_t n, int workers) {
  const auto shares = split_evenly(n, workers);
  for (std::size_t w = 0; w < shares.size(); ++w) {
    if (shares[w].begin <= index && index < shares[w].end) return static_cast<int>(w);
  }
  return -1;
}

// --- Kernel exceptions, every context ---------------------------------------------------------

class KernelFaults : public ::testing::TestWithParam<ContextFactory> {
 protected:
  void SetUp() override { context_ = GetParam()(); }
  Context& context() { return *context_; }

 private:
  std::shared_ptr<Context> context_;
};

TEST_P(KernelFaults, AThrowAtTheFirstAChosenOrTheLastIndexIsReportedForItsWorker) {
  constexpr std::size_t n = 200'000;
  for (std::size_t bad : {std::size_t{0}, std::size_t{123'457}, n - 1}) {
    SCOPED_TRACE("throw at index " + std::to_string(bad));
    const ResourceSnapshot before = Settled(context());
    const Failure failure = ExpectWorkerError(
        context(),
        [bad](int, std::size_t index, int) {
          if (index == bad) throw std::out_of_range("broken element " + std::to_string(index));
        },
        std::views::iota(0, static_cast<int>(n)));
    EXPECT_EQ(failure.worker_id, OwnerOf(bad, n, context().num_workers()));
    EXPECT_THAT(failure.what, HasSubstr("broken element " + std::to_string(bad)));
    EXPECT_THAT(failure.nested_what, HasSubstr("broken element " + std::to_string(bad)));
    ExpectCleanAndUsable(context(), before);
  }
}

TEST_P(KernelFaults, EveryWorkerThrowingAtOnceReportsWorkerZero) {
  const ResourceSnapshot before = Settled(context());
  const Failure failure = ExpectWorkerError(
      context(), [](int w, std::size_t, int) { throw std::runtime_error("worker " + std::to_string(w) + " gave up"); },
      std::views::iota(0, 10'000));
  EXPECT_EQ(failure.worker_id, 0);
  EXPECT_THAT(failure.what, HasSubstr("worker 0 gave up"));
  ExpectCleanAndUsable(context(), before);
}

TEST_P(KernelFaults, AnExceptionNotDerivedFromStdExceptionIsReportedToo) {
  const ResourceSnapshot before = Settled(context());
  const Failure failure = ExpectWorkerError(
      context(), [](int, std::size_t index, int) { if (index == 5) throw 42; }, std::views::iota(0, 10));
  EXPECT_EQ(failure.worker_id, OwnerOf(5, 10, context().num_workers()));
  EXPECT_THAT(failure.what, HasSubstr("unknown exception"));
  ExpectCleanAndUsable(context(), before);
}

INSTANTIATE_TEST_SUITE_P(PashaContexts, KernelFaults, ::testing::ValuesIn(pasha_contexts()), ContextName{});

// --- Soak: many maps and allocations, one context of each kind --------------------------------

class Soak : public KernelFaults {};

// Ten thousand maps: a thousand under AddressSanitizer, where a fork costs ten times as much (the
// sanitizer build looks for memory errors; the README's test command counts all ten thousand).
#if defined(__SANITIZE_ADDRESS__)
constexpr int kSoakMaps = 1'000;
#else
constexpr int kSoakMaps = 10'000;
#endif

TEST_P(Soak, TenThousandSmallMapsLeaveFdsChildrenAndMappingsFlat) {
  // Warm up: pools, bindings, lazily loaded libraries.
  auto out = context().alloc<int>(16, {.fill = 0});
  for (int i = 0; i < 10; ++i) context().map([&](int, std::size_t k, int v) { out[k] = v; }, std::views::iota(0, 16));
  const ResourceSnapshot before = Settled(context());
  for (int round = 0; round < kSoakMaps; ++round) {
    context().map([&](int, std::size_t k, int v) { out[k] = v + round; }, std::views::iota(0, 16));
    if (round % 1000 == 0) {
      ASSERT_EQ(out[15], 15 + round);
    }
  }
  const ResourceSnapshot after = Settled(context());
  EXPECT_EQ(after.fds, before.fds);
  EXPECT_EQ(after.children, 0u);
  // Allocators may keep a little more; a leak of one mapping or page per map would be far above this.
  EXPECT_LE(after.mapped, before.mapped + (std::size_t{4} << 20));
}

TEST_P(Soak, TenThousandAllocationsReleaseTheirMemory) {
  const ResourceSnapshot before = ResourceSnapshot::take();
  for (int round = 0; round < 10'000; ++round) {
    auto a = context().alloc<double>({64, 64}, {.fill = 1.0});
    ASSERT_EQ(a[4095], 1.0);
  }
  const ResourceSnapshot after = ResourceSnapshot::take();
  EXPECT_LE(after.mapped, before.mapped + (std::size_t{4} << 20));
  EXPECT_EQ(after.fds, before.fds);
}

INSTANTIATE_TEST_SUITE_P(OneOfEachKind, Soak, ::testing::ValuesIn(one_context_of_each_kind()), ContextName{});

// --- Worker processes that die, process context -----------------------------------------------

class WorkerDeaths : public ::testing::TestWithParam<int> {
 protected:
  ProcessContext context_{GetParam()};
};

struct Death {
  const char* name;
  std::function<void()> act;
  std::vector<std::string> expected;  // what() must contain one of these
  std::string type;                   // the nested RemoteError's type name
};

std::vector<Death> Deaths() {
  return {
      {"segfault",
       [] {
         std::signal(SIGSEGV, SIG_DFL);  // a sanitizer's handler would turn the crash into an exit
         std::raise(SIGSEGV);
       },
       {"SIGSEGV"},
       "signal"},
      {"abort", [] { std::abort(); }, {"SIGABRT"}, "signal"},
      {"SIGKILL", [] { kill(getpid(), SIGKILL); }, {"SIGKILL"}, "signal"},
      {"exit(0)", [] { std::exit(0); }, {"exited with status 0"}, "exit"},
      {"_exit(3)", [] { _exit(3); }, {"exited with status 3"}, "exit"},
  };
}

TEST_P(WorkerDeaths, AWorkerThatDiesMidShareIsReportedNamingHowItDied) {
  constexpr std::size_t n = 1000;
  for (const Death& death : Deaths()) {
    for (std::size_t bad : {std::size_t{0}, std::size_t{617}, n - 1}) {
      SCOPED_TRACE(std::string(death.name) + " at index " + std::to_string(bad));
      const ResourceSnapshot before = Settled(context_);
      const Failure failure = ExpectWorkerError(
          context_,
          [&](int, std::size_t index, int) {
            if (index == bad) death.act();
          },
          std::views::iota(0, static_cast<int>(n)));
      EXPECT_EQ(failure.worker_id, OwnerOf(bad, n, context_.num_workers()));
      std::vector<::testing::Matcher<std::string>> any;
      for (const auto& text : death.expected) any.push_back(HasSubstr(text));
      EXPECT_THAT(failure.what, ::testing::AnyOfArray(any));
      EXPECT_EQ(failure.nested_type, death.type);
      ExpectCleanAndUsable(context_, before);
    }
  }
}

// Needs a sibling: instantiated for two workers and more.
class SiblingDeaths : public WorkerDeaths {};

TEST_P(SiblingDeaths, AWorkerBlockedForeverIsStoppedWhenASiblingFails) {
  // The failing worker is the first or the last; the others block forever. The workers pasha has to
  // kill are not failures, even when their ids are lower than the failed one's.
  for (const int failing : {0, GetParam() - 1}) {
    SCOPED_TRACE("worker " + std::to_string(failing) + " fails");
    const ResourceSnapshot before = Settled(context_);
    auto blocked = context_.alloc<std::int64_t>(1, {.fill = 0});
    const Failure failure = ExpectWorkerError(
        context_,
        [failing, &blocked, workers = GetParam()](int worker, std::size_t, int) {
          if (worker == failing) {
            WaitUntilCounted(blocked[0], workers - 1);  // every sibling is in its endless loop
            throw std::runtime_error("worker " + std::to_string(failing) + " failed");
          }
          Arrive(blocked[0]);
          for (;;) pause();
        },
        std::views::iota(0, 100));
    EXPECT_EQ(failure.worker_id, failing);
    EXPECT_THAT(failure.what, HasSubstr("worker " + std::to_string(failing) + " failed"));
    ExpectCleanAndUsable(context_, before);
  }
}

TEST_P(SiblingDeaths, AHelperWhoseNestedMapsWorkerWasKilledIsUsableAgain) {
  // Worker 0 has the helper in a nested map, blocked, when a sibling fails: pasha kills it, so the
  // helper's post_map never runs in it. The helper is not left "in a map" for ever.
  long total = 0;
  auto in_nested_map = context_.alloc<std::int64_t>(1, {.fill = 0});
  auto sum = with_reduction(context_, total, 0L, std::plus<>(), [&](int, std::size_t, int v, long& partial) {
    if (v < 0) {
      Arrive(in_nested_map[0]);
      for (;;) pause();
    }
    partial += v;
  });
  const int last = GetParam() - 1;
  const Failure failure = ExpectWorkerError(
      context_,
      [&](int worker, std::size_t, int) {
        if (worker == 0) context_.map(sum, std::vector<int>{-1});
        if (worker == last) {
          WaitUntilCounted(in_nested_map[0], 1);  // worker 0 is blocked inside the helper's nested map
          throw std::runtime_error("sibling failed");
        }
      },
      std::views::iota(0, GetParam()));
  EXPECT_EQ(failure.worker_id, last);
  context_.map(sum, std::vector<int>{1, 2, 3});
  EXPECT_EQ(total, 6);
}

TEST_P(WorkerDeaths, AWorkerThatClosesAllItsFileDescriptorsStillReportsItsResultsAndErrors) {
  const ResourceSnapshot before = Settled(context_);
  auto out = context_.alloc<int>(100, {.fill = 0});
  context_.map(
      [&](int, std::size_t i, int v) {
        if (i % 25 == 0) close_range(0, ~0U, 0);
        out[i] = v + 1;
      },
      std::views::iota(0, 100));
  for (std::size_t i = 0; i < 100; ++i) ASSERT_EQ(out[i], static_cast<int>(i) + 1);
  const Failure failure = ExpectWorkerError(
      context_,
      [](int, std::size_t i, int) {
        close_range(0, ~0U, 0);
        if (i == 50) throw std::runtime_error("no descriptors left");
      },
      std::views::iota(0, 100));
  EXPECT_EQ(failure.worker_id, OwnerOf(50, 100, context_.num_workers()));
  EXPECT_THAT(failure.what, HasSubstr("no descriptors left"));
  ExpectCleanAndUsable(context_, before);
}

std::string WorkerCountName(const ::testing::TestParamInfo<int>& info) { return std::to_string(info.param) + "_workers"; }

INSTANTIATE_TEST_SUITE_P(Processes, WorkerDeaths, ::testing::ValuesIn(kWorkerCounts), WorkerCountName);
INSTANTIATE_TEST_SUITE_P(Processes, SiblingDeaths, ::testing::Values(2, 3, 7), WorkerCountName);

// --- The caller is interrupted during a process map -------------------------------------------

// Runs a process map that never ends in a separate caller process, signals the caller once its workers
// run, and checks that the caller and all its workers are gone within the bound. This test process is
// made a child subreaper, so that orphaned workers would be reparented to it and counted.
void ExpectSignalledCallerLeavesNoWorkers(int signal_number) {
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  auto* started = static_cast<std::atomic<int>*>(
      mmap(nullptr, sizeof(std::atomic<int>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(started, MAP_FAILED);
  new (started) std::atomic<int>(0);

  std::fflush(nullptr);
  const pid_t caller = fork();
  ASSERT_GE(caller, 0);
  // Seven workers: the caller forks three, and those start the other four (ForkMode::tree).
  constexpr int kWorkers = 7;
  if (caller == 0) {
    ProcessContext context(kWorkers);
    context.map(
        [started](int, std::size_t, int) {
          started->fetch_add(1);
          for (;;) pause();
        },
        std::views::iota(0, kWorkers));
    _exit(0);
  }
  const auto start = Clock::now();
  while (started->load() < kWorkers && Clock::now() - start < kReportWithin) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(started->load(), kWorkers) << "the workers never started";
  ASSERT_EQ(kill(caller, signal_number), 0);

  // Reap the caller, then every orphaned worker reparented to us, until none is left.
  int status = 0;
  ASSERT_EQ(waitpid(caller, &status, 0), caller);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == signal_number);
  while (!child_pids().empty() && Clock::now() - start < kReportWithin) {
    waitpid(-1, nullptr, WNOHANG);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(child_pids().empty()) << "workers outlived their caller";
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  munmap(started, sizeof(std::atomic<int>));
  prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST(InterruptedCaller, SigintDuringAProcessMapLeavesNoWorkerBehind) { ExpectSignalledCallerLeavesNoWorkers(SIGINT); }

TEST(InterruptedCaller, SigtermDuringAProcessMapLeavesNoWorkerBehind) {
  ExpectSignalledCallerLeavesNoWorkers(SIGTERM);
}

// --- Security -----------------------------------------------------------------------------------

TEST(SharedMemory, ProcessArraysAreAnonymousAndNothingAppearsInDevShm) {
  const auto count_dev_shm = [] {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/dev/shm")) ++n;
    return n;
  };
  const std::size_t before = count_dev_shm();
  ProcessContext context(2);
  auto a = context.alloc<double>(1 << 20, {.fill = 1.0});
  context.map([&](int, std::size_t i, double) { a[i] = 2.0; }, std::views::iota(0, 1 << 20) | std::views::transform([](int v) { return static_cast<double>(v); }));
  EXPECT_EQ(count_dev_shm(), before);
  // The mapping has no name another process could open: /proc/self/maps shows it as /dev/zero or
  // an anonymous shared memory segment, never a path under /dev/shm.
  EXPECT_THAT(mappings_matching("/dev/shm/"), ::testing::IsEmpty());
}

}  // namespace
}  // namespace pasha::conformance
