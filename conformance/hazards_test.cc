// What other threads, a user's own fork(), signals and hooks do to pasha: the hazards a map must
// survive besides its own workers failing (fault_test.cc). Each test would hang, crash or give a wrong
// result without the promise it checks; a watchdog turns a hang into a failure.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <numeric>
#include <ranges>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "conformance/pasha_contexts.h"
#include "conformance/process_probes.h"
#include "pasha/pasha.h"

namespace pasha::conformance {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// Ends the test process with a message if `what` is still running after `limit`: a hang becomes a
// failure instead of a test timeout without a word.
class Watchdog {
 public:
  Watchdog(std::string what, std::chrono::seconds limit) : thread_([this, what = std::move(what), limit] {
      std::unique_lock lock(mutex_);
      if (!done_cv_.wait_for(lock, limit, [&] { return done_; })) {
        std::fprintf(stderr, "WATCHDOG: %s did not finish within %lld s\n", what.c_str(),
                     static_cast<long long>(limit.count()));
        std::fflush(stderr);
        std::_Exit(3);
      }
    }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    done_cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::thread thread_;
};

// Runs `body` in a forked child of this test process and returns its exit status (0: every check in
// it passed). The child reports failed checks on stderr.
int RunInChild(const std::function<int()>& body, std::chrono::seconds limit = std::chrono::seconds(30)) {
  std::fflush(nullptr);
  const pid_t child = fork();
  if (child == 0) {
    alarm(static_cast<unsigned>(limit.count()));  // a hang in the child ends it with SIGALRM
    const int status = body();
    std::fflush(nullptr);
    _exit(status);
  }
  int status = 0;
  waitpid(child, &status, 0);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

// Maps `rounds` times over n elements, each kernel adding 1 at its index; returns how many indices
// were not visited exactly once in some round.
int CountWrongVisits(Context& context, int rounds, int n) {
  auto visits = context.alloc<int>(static_cast<std::size_t>(n));
  int wrong = 0;
  for (int round = 0; round < rounds; ++round) {
    std::fill(visits.begin(), visits.end(), 0);
    context.map([&](int, std::size_t i, int) { visits[i] += 1; }, std::views::iota(0, n));
    for (int v : visits) wrong += v != 1 ? 1 : 0;
  }
  return wrong;
}

// --- A context used on both sides of a user's fork() -------------------------------------------

TEST(UserFork, AProcessContextUsedOnBothSidesOfAForkKeepsEachSidesMapsApart) {
  ProcessContext context(2);
  ASSERT_EQ(CountWrongVisits(context, 1, 1000), 0);  // the control block exists before the fork
  std::fflush(nullptr);
  const pid_t child = fork();
  if (child == 0) {
    alarm(60);
    // Kernels that never throw, on the context the parent keeps using: every index once, no error.
    int wrong = 0, errors = 0;
    for (int round = 0; round < 60; ++round) {
      try {
        wrong += CountWrongVisits(context, 1, 50'000);
      } catch (const std::exception& e) {
        ++errors;
        std::fprintf(stderr, "child: %s\n", e.what());
      }
    }
    _exit(wrong == 0 && errors == 0 ? 0 : 1);
  }
  // Meanwhile the parent's maps fail on purpose, half of them.
  int failed_as_planned = 0, wrong = 0;
  for (int round = 0; round < 60; ++round) {
    if (round % 2 == 0) {
      try {
        context.map([](int, std::size_t i, int) { if (i == 77) throw std::runtime_error("planned"); },
                    std::views::iota(0, 50'000));
      } catch (const WorkerError& e) {
        failed_as_planned += std::string(e.what()).find("planned") != std::string::npos ? 1 : 0;
      }
    } else {
      wrong += CountWrongVisits(context, 1, 50'000);
    }
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child's maps saw the parent's (status " << status << ")";
  EXPECT_EQ(failed_as_planned, 30) << "some of the parent's failing maps returned normally";
  EXPECT_EQ(wrong, 0);
}

TEST(UserFork, AThreadContextWhosePoolHasStartedWorksInAForkedChild) {
  ThreadContext context(3);
  ASSERT_EQ(CountWrongVisits(context, 3, 10'000), 0);  // the pool's threads exist
  const int status = RunInChild([&] { return CountWrongVisits(context, 20, 10'000) == 0 ? 0 : 1; });
  EXPECT_EQ(status, 0) << "the forked child could not map (status " << status << "; 142 is a hang)";
  EXPECT_EQ(CountWrongVisits(context, 3, 10'000), 0) << "the parent's pool broke";
}

TEST(UserFork, AContextWhosePoolOrWorkersRanCanBeDestroyedInAForkedChildThatNeverUsedIt) {
  // As a worker process of another context does when its language's garbage collector frees a
  // context the parent made (Python's does).
  for (const auto& factory : one_context_of_each_kind()) {
    std::shared_ptr<Context> context = factory();
    SCOPED_TRACE(context->name());
    ASSERT_EQ(CountWrongVisits(*context, 2, 1000), 0);  // the pool's threads, or workers, exist
    const int status = RunInChild([&] {
      context.reset();
      return 0;
    });
    EXPECT_EQ(status, 0) << "status " << status << " (139 is a crash, 142 a hang)";
    EXPECT_EQ(CountWrongVisits(*context, 2, 1000), 0) << "the parent's context broke";
  }
}

TEST(UserFork, AForkWhileAnotherThreadIsInAMapLeavesTheChildAContextItCanUse) {
  for (const auto& factory : one_context_of_each_kind()) {
    auto context = factory();
    SCOPED_TRACE(context->name());
    // [0]: a kernel is running; [1]: the parent has forked, the kernels may end. Reachable from
    // worker processes too.
    auto flags = context->alloc<int>(2, {.fill = 0});
    std::thread other([&] {
      context->map(
          [&](int, std::size_t, int) {
            std::atomic_ref<int>(flags[0]).store(1);
            const auto deadline = Clock::now() + std::chrono::seconds(30);
            while (std::atomic_ref<int>(flags[1]).load() == 0 && Clock::now() < deadline) {
              std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
          },
          std::views::iota(0, context->num_workers()));
    });
    while (std::atomic_ref<int>(flags[0]).load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    // The other thread holds the context's map lock until the fork is done; the child must not
    // inherit it locked.
    const int status = RunInChild([&] { return CountWrongVisits(*context, 5, 1000) == 0 ? 0 : 1; });
    std::atomic_ref<int>(flags[1]).store(1);
    other.join();
    EXPECT_EQ(status, 0) << "status " << status << " (142 is a hang)";
  }
}

// --- Other threads' stdio at fork time ---------------------------------------------------------

TEST(ForkAndStdio, AThreadBlockedReadingStdinDoesNotStallProcessMaps) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const int saved_stdin = dup(STDIN_FILENO);
  ASSERT_EQ(dup2(fds[0], STDIN_FILENO), STDIN_FILENO);
  std::atomic<pid_t> reader_tid{0};
  std::thread reader([&] {
    reader_tid = this_thread_id();
    char line[64];
    (void)std::fgets(line, sizeof(line), stdin);  // holds stdin's lock until a line arrives
  });
  while (reader_tid == 0) std::this_thread::yield();
  ASSERT_TRUE(wait_until_blocked_in(reader_tid, SYS_read)) << "the reader never blocked in read(), holding stdin";
  ProcessContext context(2);
  const auto start = Clock::now();
  {
    Watchdog watchdog("20 process maps while a thread reads stdin", std::chrono::seconds(60));
    EXPECT_EQ(CountWrongVisits(context, 20, 1000), 0);
  }
  const auto took = Clock::now() - start;
  ASSERT_EQ(write(fds[1], "line\n", 5), 5);
  reader.join();
  dup2(saved_stdin, STDIN_FILENO);
  close(saved_stdin);
  close(fds[0]);
  close(fds[1]);
  EXPECT_LT(took, std::chrono::seconds(20)) << "maps waited for the reading thread";
}

// Redirects stdout into a file, fully buffered, for the lifetime of the object.
class CapturedStdout {
 public:
  CapturedStdout() : path_(std::filesystem::path(std::getenv("TEST_TMPDIR")) / "stdout.txt") {
    std::fflush(stdout);
    saved_ = dup(STDOUT_FILENO);
    const int file = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(file, STDOUT_FILENO);
    close(file);
    setvbuf(stdout, nullptr, _IOFBF, 1 << 16);
  }
  ~CapturedStdout() { restore(); }

  // Restores stdout and returns what was written to it.
  std::string restore() {
    if (saved_ >= 0) {
      std::fflush(stdout);
      dup2(saved_, STDOUT_FILENO);
      close(saved_);
      saved_ = -1;
      setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);
    }
    std::ifstream in(path_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  std::filesystem::path path_;
  int saved_ = -1;
};

TEST(ForkAndStdio, OutputAnotherThreadWritesDuringProcessMapsIsPrintedExactlyOnce) {
  constexpr int kLines = 200'000;
  std::string text;
  {
    CapturedStdout captured;
    ProcessContext context(3);
    std::atomic<bool> writing{true};
    std::thread writer([&] {
      for (int i = 0; i < kLines; ++i) std::printf("line %d\n", i);
      writing = false;
    });
    int maps = 0;
    while (writing || maps < 20) {
      context.map([](int, std::size_t, int) {}, std::views::iota(0, 3));
      ++maps;
    }
    writer.join();
    context.wait_for_exited_workers();
    text = captured.restore();
  }
  std::istringstream lines(text);
  std::string line;
  std::vector<int> seen(kLines, 0);
  int torn = 0;
  while (std::getline(lines, line)) {
    int number = -1;
    if (std::sscanf(line.c_str(), "line %d", &number) == 1 && number >= 0 && number < kLines &&
        line == "line " + std::to_string(number)) {
      ++seen[static_cast<std::size_t>(number)];
    } else {
      ++torn;
    }
  }
  EXPECT_EQ(torn, 0);
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), kLines) << "lines missing or printed twice";
}

TEST(ForkAndStdio, WorkersOutputThroughUnsynchronisedCxxStreamsIsPrintedOnce) {
  // In a child of this test, so that sync_with_stdio(false) does not change the other tests.
  const int status = RunInChild([] {
    std::ios_base::sync_with_stdio(false);
    CapturedStdout captured;
    std::cout << "before the map\n";  // buffered in std::cout's own buffer
    {
      ProcessContext context(3);
      context.map([](int w, std::size_t, int) { std::cout << "worker " << w << "\n"; }, std::views::iota(0, 3));
    }
    std::cout << "after the map\n";
    std::cout.flush();
    const std::string text = captured.restore();
    const std::multiset<std::string> expected{"before the map", "worker 0", "worker 1", "worker 2", "after the map"};
    std::multiset<std::string> got;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) got.insert(line);
    if (got != expected) {
      std::fprintf(stderr, "stdout was:\n%s\n", text.c_str());
      return 1;
    }
    return text.rfind("before the map\n", 0) == 0 ? 0 : 2;
  });
  EXPECT_EQ(status, 0);
}

// --- Locks inside pasha at fork time ----------------------------------------------------------

TEST(ForkSafety, KernelsReachTheDefaultContextWhileAnotherThreadKeepsReplacingIt) {
  set_default_context("serial");
  ProcessContext context(2);
  std::atomic<bool> running{true};
  std::thread replacer([&] {
    while (running) set_default_context("serial");  // takes the default context's lock, often
  });
  {
    Watchdog watchdog("process maps whose kernels use pasha::alloc and pasha::map", std::chrono::seconds(120));
    auto sums = context.alloc<std::int64_t>({}, {.fill = 0, .per_worker = true});
    for (int round = 0; round < 100; ++round) {
      context.map(
          [&](int w, std::size_t, int) {
            auto scratch = pasha::alloc<int>(4, {.fill = 1});
            pasha::map([&](int, std::size_t, int v) { sums[static_cast<std::size_t>(w)] += v + scratch[0]; },
                       std::views::iota(0, 3));
          },
          std::views::iota(0, 2));
    }
    EXPECT_EQ(std::accumulate(sums.begin(), sums.end(), std::int64_t{0}), 100 * 2 * (0 + 1 + 2 + 3));
  }
  running = false;
  replacer.join();
}

// Both kinds pasha uses: a recursive one remembers its owner's thread, which a fork changes.
template <typename Mutex>
class ForkSafeMutexes : public ::testing::Test {};
using ForkSafeKinds = ::testing::Types<ForkSafe<std::mutex>, ForkSafe<std::recursive_mutex>>;
TYPED_TEST_SUITE(ForkSafeMutexes, ForkSafeKinds);

TYPED_TEST(ForkSafeMutexes, AForkWaitsForTheHolderAndTheChildCanTakeItTwice) {
  TypeParam mutex;
  std::atomic<bool> held{false};
  std::atomic<bool> fork_waited{false};
  const pid_t forking_thread = this_thread_id();
  std::thread holder([&] {
    std::lock_guard lock(mutex);
    held = true;
    // Let go only once the fork waits for the mutex (pthread_atfork's prepare handler).
    fork_waited = wait_until_blocked_in(forking_thread, SYS_futex);
  });
  while (!held) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const int status = RunInChild(
      [&] {
        { std::lock_guard lock(mutex); }  // the holder does not exist here
        { std::lock_guard lock(mutex); }  // and the child's own unlock really let it go
        return 0;
      },
      std::chrono::seconds(10));
  holder.join();
  EXPECT_TRUE(fork_waited) << "the fork did not wait for the holder of the mutex";
  EXPECT_EQ(status, 0) << "status " << status << " (142 is a hang)";
  std::lock_guard lock(mutex);  // the parent's copy is free again too
}

// --- Helpers in maps nested across contexts ----------------------------------------------------------

// A map nested in a kernel passes the outer worker's id, which may exceed the inner context's count.
TEST(HelpersNestedAcrossContexts, AHelperOfASmallContextWorksInsideTheKernelsOfABiggerOne) {
  for (const auto& make_outer : pasha_contexts()) {
    const std::shared_ptr<Context> outer = make_outer();
    if (outer->num_workers() < 3) continue;
    SCOPED_TRACE(outer->name() + " " + std::to_string(outer->num_workers()));
    SerialContext inner;
    auto totals = outer->alloc<double>(8, {.fill = -1});
    const std::vector<double> small{1, 2, 3, 4};
    outer->map(
        [&](int, std::size_t i, int) {
          double total = 0;
          inner.map(with_reduction(inner, total, 0.0, std::plus<>(), [](int, std::size_t, double x, double& p) { p += x; }),
                    small);
          totals[i] = total;
        },
        std::views::iota(0, 8));
    for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(totals[i], 10.0) << i;
  }
}

TEST(HelpersNestedAcrossContexts, MoveOnlyKernelsNestInHelpers) {
  ThreadContext context(2);
  auto seen = context.alloc<int>(10, {.fill = 0});
  auto owned = std::make_unique<int>(1);
  context.map(with_init([](int) {}, with_finalize([owned = std::move(owned), &seen](int, std::size_t i, int) { seen[i] = *owned; },
                                                  [](int) {})),
              std::views::iota(0, 10));
  EXPECT_EQ(std::accumulate(seen.begin(), seen.end(), 0), 10);
}

// --- Hooks on failure paths, worker processes --------------------------------------------------

// post_worker stays until another worker has failed and the grace for kernels (50 ms) is well past,
// then marks that it ran to its end.
class SlowPostWorker : public MapHook {
 public:
  explicit SlowPostWorker(Context& context)
      : completed_(context.alloc<int>({}, {.fill = 0, .per_worker = true})),
        failing_(context.alloc<int>({}, {.fill = 0})),
        entered_(context.alloc<int>({}, {.fill = 0})) {}
  void post_worker(Context&, int w) override {
    if (w == 0) {
      std::atomic_ref<int>(*entered_.data()).store(1);
      const auto deadline = Clock::now() + std::chrono::seconds(10);
      while (std::atomic_ref<int>(*failing_.data()).load() == 0 && Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    completed_[static_cast<std::size_t>(w)] = 1;
  }
  // Called by the failing worker just before it throws, once worker 0 is in its post_worker (false if
  // it never got there: a hang).
  bool failing() {
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (std::atomic_ref<int>(*entered_.data()).load() == 0) {
      if (Clock::now() > deadline) return false;
      std::this_thread::yield();
    }
    std::atomic_ref<int>(*failing_.data()).store(1);
    return true;
  }
  int completed(int w) const { return completed_[static_cast<std::size_t>(w)]; }

 private:
  Array<int> completed_;
  Array<int> failing_;
  Array<int> entered_;
};

TEST(HooksOnFailure, AWorkerInItsPostWorkerWhenASiblingFailsIsNotKilled) {
  ProcessContext context(2);
  auto hook = std::make_shared<SlowPostWorker>(context);
  context.add_hook(hook);
  // Worker 0 finishes at once and sits in post_worker; worker 1 fails once it is there.
  try {
    context.map(
        [&](int w, std::size_t, int) {
          if (w == 1) {
            if (!hook->failing()) throw std::logic_error("worker 0 never reached its post_worker");
            throw std::runtime_error("late failure");
          }
        },
        std::views::iota(0, 2));
    ADD_FAILURE() << "the map did not fail";
  } catch (const WorkerError& e) {
    EXPECT_THAT(e.what(), HasSubstr("late failure"));
  }
  EXPECT_EQ(hook->completed(0), 1) << "worker 0 was killed in its post_worker";
  EXPECT_EQ(hook->completed(1), 1) << "the failing worker's post_worker did not run";
}

// --- Signals and reaping -----------------------------------------------------------------------

// A map with SIGCHLD ignored: the kernel reaps exited children itself. Maps still work, and a
// worker's death is still reported.
TEST(Reaping, MapsWorkAndDeathsAreReportedWithSigchldIgnored) {
  struct sigaction ignore {}, previous {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGCHLD, &ignore, &previous), 0);
  {
    ProcessContext context(7);
    EXPECT_EQ(CountWrongVisits(context, 10, 1000), 0);
    try {
      context.map([](int, std::size_t i, int) { if (i == 500) _exit(4); }, std::views::iota(0, 1000));
      ADD_FAILURE() << "no exception";
    } catch (const WorkerError& e) {
      EXPECT_EQ(e.worker_id(), 3);
      EXPECT_THAT(e.what(), ::testing::AnyOf(HasSubstr("status 4"), HasSubstr("SIGCHLD is ignored")));
    }
    EXPECT_EQ(CountWrongVisits(context, 3, 1000), 0);
  }
  sigaction(SIGCHLD, &previous, nullptr);
}

// Whether this process holds a pidfd for `pid` (its fdinfo says so).
bool HoldsPidfdFor(pid_t holder, pid_t pid) {
  const std::string fd_dir = "/proc/" + std::to_string(holder) + "/fd";
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(fd_dir, error)) {
    std::error_code link_error;
    if (std::filesystem::read_symlink(entry.path(), link_error).string() != "anon_inode:[pidfd]") continue;
    std::ifstream info("/proc/" + std::to_string(holder) + "/fdinfo/" + entry.path().filename().string());
    for (std::string line; std::getline(info, line);) {
      if (line == "Pid:\t" + std::to_string(pid)) return true;
    }
  }
  return false;
}

// The caller holds a pidfd for every worker before the worker runs any code of the user's (and so
// before it could exit and be reaped by someone else, freeing its pid for another process).
TEST(Reaping, TheCallerHoldsAPidfdForEveryWorkerBeforeItsFirstHookOrKernel) {
  class CheckingHook : public MapHook {
   public:
    CheckingHook(Context& context, pid_t caller)
        : held_(context.alloc<int>({}, {.fill = -1, .per_worker = true})), caller_(caller) {}
    void pre_worker(Context&, int w) override { held_[static_cast<std::size_t>(w)] = HoldsPidfdFor(caller_, getpid()) ? 1 : 0; }
    int held(int w) const { return held_[static_cast<std::size_t>(w)]; }

   private:
    Array<int> held_;
    pid_t caller_;
  };
  for (const ForkMode mode : {ForkMode::tree, ForkMode::sequential}) {
    ProcessContext context(7, Binding::none, mode);
    auto hook = std::make_shared<CheckingHook>(context, getpid());
    context.add_hook(hook);
    for (int round = 0; round < 5; ++round) {
      context.map([](int, std::size_t, int) {}, std::views::iota(0, 7));
      for (int w = 0; w < 7; ++w) ASSERT_EQ(hook->held(w), 1) << "worker " << w << ", round " << round;
    }
  }
}

// --- Every public member from any thread --------------------------------------------------------

// wait_for_exited_workers() in one thread while another maps on the same context, as a threaded
// program that reaps its own children would call it: both go on, nothing is corrupted, no worker is
// left behind.
TEST(ThreadSafety, WaitForExitedWorkersBesideMapsInAnotherThread) {
  ProcessContext context(3);
  std::atomic<bool> mapping{true};
  std::thread reaper([&] {
    while (mapping) context.wait_for_exited_workers();
  });
  {
    Watchdog watchdog("200 maps beside wait_for_exited_workers", std::chrono::seconds(120));
    for (int m = 0; m < 200; ++m) ASSERT_EQ(CountWrongVisits(context, 1, 300), 0) << "map " << m;
  }
  mapping = false;
  reaper.join();
  context.wait_for_exited_workers();
  EXPECT_TRUE(child_pids().empty());
}

// --- Threads a kernel starts ---------------------------------------------------------------------

// A kernel whose OpenMP loop maps, from each of its threads, on the context running the kernel: in a
// worker process the maps run inline at once; in the caller's process they wait until pasha sees the
// outer map's workers blocked, then run inline. Nothing hangs, every element is visited once. Each
// kind runs in a fresh process: OpenMP's own thread pool does not survive a fork, so a process that
// has used OpenMP cannot fork workers that use it again (a limit of libgomp, not of pasha).
TEST(KernelThreads, OpenMpThreadsOfAKernelMapOnTheContextRunningIt) {
  for (const std::string& kind : context_kind_names()) {
    const int status = RunInChild(
        [&] {
          const std::shared_ptr<Context> context = make_context(kind, kind == "serial" ? 1 : 2);
          auto visits = context->alloc<int>({2, 4, 8}, {.fill = 0});
          context->map(
              [&](int, std::size_t outer, int) {
#pragma omp parallel for num_threads(4)
                for (int t = 0; t < 4; ++t) {
                  context->map(
                      [&](int, std::size_t i, int) { std::atomic_ref<int>(visits(outer, t, i)).fetch_add(1); },
                      std::views::iota(0, 8));
                }
              },
              std::views::iota(0, 2));
          return std::count(visits.begin(), visits.end(), 1) == 64 ? 0 : 1;
        },
        std::chrono::seconds(60));
    EXPECT_EQ(status, 0) << kind << ": status " << status << " (142 is a hang)";
  }
}

// A pre_map hook that waits for a thread of its own which maps on the same context: the hook's
// thread holds the map's turn, so the thread's map runs inline (as worker 0) once the hook is seen
// blocked, instead of waiting for a turn that cannot come.
TEST(KernelThreads, AMapFromAThreadAPreMapHookWaitsForRunsInline) {
  class MapsFromAThread : public MapHook {
   public:
    explicit MapsFromAThread(Array<int> visits) : visits_(std::move(visits)) {}
    void pre_map(Context& context) override {
      if (inside_) return;  // the inner map's own hooks
      inside_ = true;
      std::async(std::launch::async, [&] {
        context.map([&](int, std::size_t i, int) { std::atomic_ref<int>(visits_[i]).fetch_add(1); },
                    std::views::iota(0, 6));
      }).get();
      inside_ = false;
    }

   private:
    Array<int> visits_;
    std::atomic<bool> inside_{false};
  };
  for (const std::string& kind : context_kind_names()) {
    const Watchdog watchdog("a map from a pre_map hook's thread on " + kind, std::chrono::seconds(60));
    const std::shared_ptr<Context> context = make_context(kind, kind == "serial" ? 1 : 2);
    auto visits = context->alloc<int>(6, {.fill = 0});
    context->add_hook(std::make_shared<MapsFromAThread>(visits));
    context->map([](int, std::size_t, int) {}, std::views::iota(0, 4));
    EXPECT_EQ(std::count(visits.begin(), visits.end(), 1), 6) << kind;
  }
}

// --- Interrupted maps ----------------------------------------------------------------------------

// A caller's check that throws at once, round after round: every worker process of every round is
// gone and reaped by the time map throws, however early in their start the workers were stopped.
TEST(Interruption, ProcessMapsInterruptedAtOnceLeaveNoChildren) {
  const Watchdog watchdog("50 interrupted process maps", std::chrono::seconds(120));
  ProcessContext context(8);
  for (int round = 0; round < 50; ++round) {
    EXPECT_THROW(context.map([](int, std::size_t, int) { std::this_thread::sleep_for(std::chrono::seconds(5)); },
                             std::views::iota(0, 8), {.interrupt_check = [] { throw std::range_error("stop"); }}),
                 std::range_error);
    ASSERT_THAT(child_pids(), ::testing::IsEmpty()) << "round " << round;
  }
  EXPECT_EQ(CountWrongVisits(context, 2, 100), 0);
}

// --- Reaping by others -----------------------------------------------------------------------------

std::atomic<int> reaped_by_handler{0};
void ReapEveryChild(int) {
  const int saved = errno;
  while (waitpid(-1, nullptr, WNOHANG) > 0) reaped_by_handler.fetch_add(1);
  errno = saved;
}

// A worker that dies while the program's own SIGCHLD handler reaps every child: the map still fails
// at once, and its message names the signal or, when the handler took the status first, says so and
// what to do.
TEST(Reaping, AWorkerThatDiesWhileTheProgramsSigchldHandlerReapsIsReportedWithItsCause) {
  struct sigaction reaper {}, previous {};
  reaper.sa_handler = ReapEveryChild;
  sigemptyset(&reaper.sa_mask);
  ASSERT_EQ(sigaction(SIGCHLD, &reaper, &previous), 0);
  {
    ProcessContext context(2);
    try {
      context.map([](int w, std::size_t, int) { if (w == 1) raise(SIGSEGV); }, std::views::iota(0, 2));
      ADD_FAILURE() << "no exception";
    } catch (const WorkerError& e) {
      EXPECT_EQ(e.worker_id(), 1);
      EXPECT_THAT(e.what(), ::testing::AnyOf(HasSubstr("SIGSEGV"), HasSubstr("taken by a waitpid of the program's (a "
                                                                            "SIGCHLD handler")));
    }
    EXPECT_EQ(CountWrongVisits(context, 3, 1000), 0);
  }
  sigaction(SIGCHLD, &previous, nullptr);
}

}  // namespace
}  // namespace pasha::conformance
