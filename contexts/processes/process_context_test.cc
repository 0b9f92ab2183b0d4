// ProcessContext specifics beyond the conformance suite: how worker processes fail, what they leave
// behind (nothing), where their memory lives, and what they inherit from the caller.
#include "contexts/processes/process_context.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <new>
#include <ranges>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "functors/ndarray/ndarray.h"
#include "functors/sequence/sequence.h"
#include "pasha/core/errors.h"

namespace pasha {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr auto kPatience = std::chrono::seconds(10);

std::vector<std::string> DirectoryEntries(const char* path) {
  std::vector<std::string> names;
  DIR* dir = opendir(path);
  if (dir == nullptr) return names;
  while (const dirent* entry = readdir(dir)) names.emplace_back(entry->d_name);
  closedir(dir);
  return names;
}

std::size_t OpenFdCount() { return DirectoryEntries("/proc/self/fd").size(); }

// True when this process has no child left, running or zombie.
bool NoChildrenLeft() { return waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD; }

bool MappingListed(const void* address) {
  std::ifstream maps("/proc/self/maps");
  const auto target = reinterpret_cast<std::uintptr_t>(address);
  std::string line;
  while (std::getline(maps, line)) {
    std::uintptr_t begin = 0, end = 0;
    char dash = 0;
    std::istringstream fields(line);
    fields >> std::hex >> begin >> dash >> end;
    if (begin <= target && target < end) return true;
  }
  return false;
}

// Parses an hwloc list such as "0,2-3" into CPU numbers.
std::set<int> ParseCpuList(const std::string& text) {
  std::set<int> cpus;
  std::istringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    const auto dash = item.find('-');
    const int first = std::stoi(item.substr(0, dash));
    const int last = dash == std::string::npos ? first : std::stoi(item.substr(dash + 1));
    for (int cpu = first; cpu <= last; ++cpu) cpus.insert(cpu);
  }
  return cpus;
}

TEST(ProcessContext, AKernelExceptionReachesTheCallerWithWorkerIdMessageAndTypeName) {
  ProcessContext context(2);
  try {
    context.map(
        [](int, std::size_t index, int) {
          if (index == 70) throw std::out_of_range("index 70 is out of range");
        },
        std::views::iota(0, 100));
    FAIL() << "no exception";
  } catch (const WorkerError& error) {
    EXPECT_EQ(error.worker_id(), 1);
    EXPECT_THAT(error.what(), HasSubstr("worker 1"));
    EXPECT_THAT(error.what(), HasSubstr("index 70 is out of range"));
    try {
      std::rethrow_if_nested(error);
      FAIL() << "nothing nested";
    } catch (const RemoteError& cause) {
      EXPECT_EQ(cause.type_name(), "std::out_of_range");
      EXPECT_STREQ(cause.what(), "index 70 is out of range");
    }
  }
}

TEST(ProcessContext, AVeryLongExceptionMessageArrivesTruncatedNotLost) {
  ProcessContext context(1);
  const std::string long_text = "start " + std::string(100'000, 'x');
  try {
    context.map([&](int, std::size_t, int) { throw std::runtime_error(long_text); }, std::views::iota(0, 1));
    FAIL() << "no exception";
  } catch (const WorkerError& error) {
    EXPECT_THAT(error.what(), HasSubstr("start xxxx"));
    EXPECT_THAT(error.what(), HasSubstr("..."));
  }
}

TEST(ProcessContext, AThousandMapsLeakNoFileDescriptorsAndLeaveNoChildren) {
  ProcessContext context(2);
  auto out = context.alloc<int>(4, {.fill = 0});
  ASSERT_TRUE(NoChildrenLeft());
  const std::size_t fds_before = OpenFdCount();
  for (int round = 0; round < 1000; ++round) {
    if (round % 100 == 99) {
      EXPECT_THROW(context.map([](int, std::size_t, int) { throw std::runtime_error("planned"); },
                               std::views::iota(0, 4)),
                   WorkerError);
    } else {
      context.map([&](int, std::size_t i, int) { out[i] += 1; }, std::views::iota(0, 4));
    }
  }
  context.wait_for_exited_workers();
  EXPECT_EQ(OpenFdCount(), fds_before);
  EXPECT_TRUE(NoChildrenLeft());
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(out[i], 990);
}

// map returns once every worker has recorded its share done; the processes may still be exiting.
// They are gone by the time the next map's workers run, and after wait_for_exited_workers().
// Workers that are slow to exit (a large private heap to unmap) have exited, and were reaped, when map
// returns: none is left as a child, and none holds a file (or its lock) the caller opened before.
TEST(ProcessContext, WhenMapReturnsEveryWorkerHasExitedAndHoldsNothingOfTheCallers) {
  char path[] = "/tmp/pasha_lock_XXXXXX";
  const int made = mkstemp(path);
  ASSERT_GE(made, 0);
  close(made);
  for (const ForkMode mode : {ForkMode::tree, ForkMode::sequential}) {
    ProcessContext context(3, Binding::compact, mode);
    for (int round = 0; round < 5; ++round) {
      const int held = open(path, O_RDWR | O_CLOEXEC);
      ASSERT_GE(held, 0);
      ASSERT_EQ(flock(held, LOCK_EX | LOCK_NB), 0);
      context.map(
          [](int, std::size_t, int) {
            std::vector<char> heap(std::size_t{64} << 20, 1);  // a slow exit
            static_cast<void>(heap);
          },
          std::views::iota(0, 3));
      EXPECT_TRUE(NoChildrenLeft()) << "a worker of the map was still there when it returned";
      close(held);
      const int again = open(path, O_RDWR | O_CLOEXEC);
      ASSERT_GE(again, 0);
      EXPECT_EQ(flock(again, LOCK_EX | LOCK_NB), 0) << "a worker still held the caller's file and its lock";
      close(again);
    }
  }
  unlink(path);
}

TEST(ProcessContext, TheDestructorReapsWorkersStillExiting) {
  const std::size_t fds_before = OpenFdCount();
  {
    ProcessContext context(7);
    context.map([](int, std::size_t, int) {}, std::views::iota(0, 7));
  }
  EXPECT_TRUE(NoChildrenLeft());
  EXPECT_EQ(OpenFdCount(), fds_before);
}

// Every worker is a child of the caller, however it was started, so that the caller reaps it and
// PR_SET_PDEATHSIG follows the caller.
TEST(ProcessContext, EveryWorkerOfATreeIsAChildOfTheCaller) {
  ProcessContext context(7, Binding::none, ForkMode::tree);
  auto parents = context.alloc<std::int64_t>(7, {.fill = 0});
  context.map([&](int, std::size_t i, int) { parents[i] = getppid(); }, std::views::iota(0, 7));
  for (std::size_t i = 0; i < 7; ++i) EXPECT_EQ(parents[i], getpid()) << "worker " << i;
}

// glibc's cached thread id is right in every worker, however it was started: functions that act on
// pthread_self() act on the worker itself, not on the process that started it.
TEST(ProcessContext, PthreadSelfIsTheWorkersOwnThreadInEveryWorker) {
  ProcessContext context(7, Binding::none, ForkMode::tree);
  auto ok = context.alloc<int>(7, {.fill = -1});
  context.map(
      [&](int, std::size_t i, int) {
        cpu_set_t set;
        CPU_ZERO(&set);
        // Acts on the calling thread through glibc's cached id; with a stale id it would fail or act
        // on another process.
        const int got = pthread_getaffinity_np(pthread_self(), sizeof(set), &set);
        char name[16] = {};
        const int named = pthread_setname_np(pthread_self(), "pasha-probe");
        const int read_back = pthread_getname_np(pthread_self(), name, sizeof(name));
        ok[i] = got == 0 && named == 0 && read_back == 0 && std::string(name) == "pasha-probe" ? 1 : 0;
      },
      std::views::iota(0, 7));
  for (std::size_t i = 0; i < 7; ++i) EXPECT_EQ(ok[i], 1) << "worker " << i;
}

TEST(ProcessContext, ChildrenThatArePashasOnlyAreReaped) {
  const pid_t own_child = fork();
  ASSERT_GE(own_child, 0);
  if (own_child == 0) {
    for (;;) pause();
  }
  ProcessContext context(2);
  for (int round = 0; round < 5; ++round) context.map([](int, std::size_t, int) {}, std::views::iota(0, 2));
  EXPECT_THROW(context.map([](int, std::size_t, int) { _exit(1); }, std::views::iota(0, 2)), WorkerError);
  ASSERT_EQ(kill(own_child, SIGTERM), 0) << "pasha reaped or killed a child that is not its own";
  int status = 0;
  ASSERT_EQ(waitpid(own_child, &status, 0), own_child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
}

TEST(ProcessContext, ArraysAreUnmappedWhenTheLastHandleGoes) {
  ProcessContext context(2);
  auto array = context.alloc<double>(1 << 18);
  const void* address = array.data();
  ASSERT_TRUE(MappingListed(address));
  Array<double> copy = array;
  array = Array<double>();
  EXPECT_TRUE(MappingListed(address)) << "unmapped while a handle remains";
  copy = Array<double>();
  EXPECT_FALSE(MappingListed(address));
}

TEST(ProcessContext, ArraysOutliveTheirContext) {
  Array<int> array;
  {
    ProcessContext context(2);
    array = context.alloc<int>(1 << 20, {.fill = 5});
  }
  ASSERT_TRUE(MappingListed(array.data()));
  EXPECT_EQ(array[(1 << 20) - 1], 5);
}

TEST(ProcessContext, NothingAppearsInDevShm) {
  const auto before = DirectoryEntries("/dev/shm");
  {
    ProcessContext context(2);
    auto array = context.alloc<double>(1 << 20, {.fill = 1.0});
    context.map([&](int, std::size_t i, double v) { array[i] = 2 * v; }, array);
    EXPECT_EQ(DirectoryEntries("/dev/shm"), before);
  }
  EXPECT_EQ(DirectoryEntries("/dev/shm"), before);
}

TEST(ProcessContext, AnAbsurdAllocationThrowsBadAllocNamingTheSize) {
  ProcessContext context(2);
  try {
    context.alloc<char>(std::size_t{1} << 50);
    FAIL() << "no exception";
  } catch (const std::bad_alloc& error) {
    EXPECT_THAT(error.what(), HasSubstr("1125899906842624 bytes"));
  }
  context.map([](int, std::size_t, int) {}, std::views::iota(0, 2));
}

TEST(ProcessContext, ChildrenAreBoundToThePlannedCpusets) {
  for (int workers : {1, 2, 3}) {
    SCOPED_TRACE(std::to_string(workers) + " workers");
    ProcessContext context(workers, Binding::compact);
    auto allowed = context.alloc<std::uint64_t>({}, {.fill = 0, .per_worker = true});
    context.map(
        [&](int worker_id, std::size_t, int) {
          cpu_set_t set;
          CPU_ZERO(&set);
          if (sched_getaffinity(0, sizeof(set), &set) != 0) throw std::runtime_error("sched_getaffinity");
          std::uint64_t mask = 0;
          for (int cpu = 0; cpu < 64; ++cpu) {
            if (CPU_ISSET(cpu, &set)) mask |= std::uint64_t{1} << cpu;
          }
          allowed[static_cast<std::size_t>(worker_id)] = mask;
        },
        std::views::iota(0, workers));
    for (int w = 0; w < workers; ++w) {
      std::uint64_t planned = 0;
      for (int cpu : ParseCpuList(context.binding(w))) planned |= std::uint64_t{1} << cpu;
      EXPECT_EQ(allowed[static_cast<std::size_t>(w)], planned) << "worker " << w << ", cpuset " << context.binding(w);
    }
  }
}

// Streams other than stdout and stderr are the caller's: workers never write what they inherited
// (they leave with _exit), and pasha does not flush them.
TEST(ProcessContext, OutputBufferedInOtherStreamsIsWrittenOnceByTheCaller) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  ASSERT_GE(std::fputs("buffered before the map\n", file), 0);
  ProcessContext context(7);
  context.map([](int, std::size_t, int) {}, std::views::iota(0, 7));
  context.wait_for_exited_workers();
  const auto contents = [&] {
    char buffer[256] = {};
    const ssize_t n = pread(fileno(file), buffer, sizeof(buffer) - 1, 0);
    return std::string(buffer, n > 0 ? static_cast<std::size_t>(n) : 0);
  };
  EXPECT_EQ(contents(), "") << "a worker wrote the caller's buffer";
  std::fflush(file);
  EXPECT_EQ(contents(), "buffered before the map\n");
  std::fclose(file);
}

TEST(ProcessContext, WhatWorkersPrintToStdoutIsNotLost) {
  std::fflush(stdout);
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  const int saved_stdout = dup(STDOUT_FILENO);
  ASSERT_GE(saved_stdout, 0);
  ASSERT_GE(dup2(pipe_fds[1], STDOUT_FILENO), 0);
  close(pipe_fds[1]);
  {
    ProcessContext context(2);
    context.map([](int worker_id, std::size_t, int) { std::printf("hello from worker %d\n", worker_id); },
                std::views::iota(0, 2));
  }
  std::fflush(stdout);
  dup2(saved_stdout, STDOUT_FILENO);
  close(saved_stdout);
  std::string printed;
  char buffer[256];
  for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof(buffer))) > 0;) printed.append(buffer, static_cast<std::size_t>(n));
  close(pipe_fds[0]);
  EXPECT_THAT(printed, HasSubstr("hello from worker 0\n"));
  EXPECT_THAT(printed, HasSubstr("hello from worker 1\n"));
  EXPECT_EQ(printed.size(), 2 * std::string("hello from worker 0\n").size());
}

std::atomic<int>* atexit_calls = nullptr;

TEST(ProcessContext, WorkersLeaveWithoutRunningAtexitHandlers) {
  void* memory = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(memory, MAP_FAILED);
  atexit_calls = new (memory) std::atomic<int>(0);
  static const bool registered = [] {
    std::atexit([] {
      if (atexit_calls != nullptr) atexit_calls->fetch_add(1);
    });
    return true;
  }();
  ASSERT_TRUE(registered);
  ProcessContext context(2);
  context.map([](int, std::size_t, int) {}, std::views::iota(0, 2));
  EXPECT_EQ(atexit_calls->load(), 0);
  atexit_calls = nullptr;
  munmap(memory, 4096);
}

class PidHook : public MapHook {
 public:
  explicit PidHook(Context& context) : pids_(context.alloc<std::int64_t>({2}, {.fill = 0, .per_worker = true})) {}
  void pre_worker(Context&, int w) override { pids_(w, 0) = getpid(); }
  void post_worker(Context&, int w) override { pids_(w, 1) = getpid(); }
  std::int64_t pid(int w, int which) const { return pids_(w, which); }

 private:
  Array<std::int64_t> pids_;
};

TEST(ProcessContext, WorkerHooksRunInTheWorkerProcess) {
  ProcessContext context(2);
  auto hook = std::make_shared<PidHook>(context);
  context.add_hook(hook);
  auto kernel_pids = context.alloc<std::int64_t>({}, {.fill = 0, .per_worker = true});
  context.map([&](int w, std::size_t, int) { kernel_pids[static_cast<std::size_t>(w)] = getpid(); },
              std::views::iota(0, 2));
  for (int w = 0; w < 2; ++w) {
    SCOPED_TRACE("worker " + std::to_string(w));
    EXPECT_NE(hook->pid(w, 0), getpid());
    EXPECT_EQ(hook->pid(w, 0), kernel_pids[static_cast<std::size_t>(w)]);
    EXPECT_EQ(hook->pid(w, 1), kernel_pids[static_cast<std::size_t>(w)]);
  }
  EXPECT_NE(kernel_pids[0], kernel_pids[1]);
}

TEST(ProcessContext, ANestedMapRunsInTheSameWorkerProcess) {
  ProcessContext context(2);
  auto pids = context.alloc<std::int64_t>({2, 3}, {.fill = 0});
  auto outer_pids = context.alloc<std::int64_t>(2, {.fill = 0});
  context.map(
      [&](int, std::size_t outer, int) {
        outer_pids[outer] = getpid();
        context.map([&](int, std::size_t inner, int) { pids(outer, inner) = getpid(); }, std::views::iota(0, 3));
      },
      std::views::iota(0, 2));
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_NE(outer_pids[i], getpid());
    for (std::size_t j = 0; j < 3; ++j) EXPECT_EQ(pids(i, j), outer_pids[i]);
  }
}

TEST(ProcessContext, MapsFromTwoThreadsAtOnceAreSafe) {
  ProcessContext context(2);
  const auto run = [&](int offset, Array<int> out) {
    for (int round = 0; round < 20; ++round) {
      context.map([&](int, std::size_t i, int v) { out[i] = v + offset + round; }, std::views::iota(0, 100));
      for (std::size_t i = 0; i < 100; ++i) {
        if (out[i] != static_cast<int>(i) + offset + round) throw std::runtime_error("wrong result");
      }
    }
  };
  auto a = context.alloc<int>(100);
  auto b = context.alloc<int>(100);
  std::exception_ptr error;
  std::thread other([&] {
    try {
      run(1000, b);
    } catch (...) {
      error = std::current_exception();
    }
  });
  EXPECT_NO_THROW(run(0, a));
  other.join();
  EXPECT_FALSE(error);
}

TEST(ProcessContext, LargeArraysAreWrittenCompletelyByTheWorkers) {
  ProcessContext context(2);
  const std::size_t n = std::size_t{3} << 20;
  auto input = context.alloc<double>(n);
  for (std::size_t i = 0; i < n; ++i) input[i] = static_cast<double>(i);
  auto output = context.alloc<double>(n);  // partly touched by the caller, partly a hole
  for (std::size_t i = 0; i < n / 3; ++i) output[i] = -1;
  context.map([&](int, std::size_t i, double v) { output[i] = 3 * v; }, input);
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(output[i], 3.0 * static_cast<double>(i)) << i;
}

TEST(ProcessContext, TheDefaultWorkerCountIsOnePerCore) { EXPECT_EQ(ProcessContext().num_workers(), default_num_workers()); }

TEST(ProcessContext, AnInvalidWorkerCountIsInvalidArgument) {
  EXPECT_THROW(ProcessContext(0), std::invalid_argument);
  EXPECT_THROW(ProcessContext(kMaxWorkers + 1), std::invalid_argument);
}

TEST(ProcessContext, BindingOfAnUnknownWorkerIsOutOfRange) {
  ProcessContext context(2);
  EXPECT_THROW(context.binding(2), std::out_of_range);
}

}  // namespace
}  // namespace pasha
