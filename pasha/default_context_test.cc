#include "pasha/default_context.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <thread>
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

// Runs `body` in a forked child and waits for it for at most `limit`: the child's exit status, or -1
// when it had to be killed (a hang).
template <class Body>
int StatusOfChildWithin(Body&& body, std::chrono::seconds limit) {
  const pid_t child = fork();
  if (child == 0) _exit(body());
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (waitpid(child, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A thread that forks (a child that exits at once) again and again until it goes out of scope.
class ForkingThread {
 public:
  ForkingThread()
      : thread_([this] {
          while (running_) {
            const pid_t grandchild = fork();
            if (grandchild == 0) _exit(0);
            waitpid(grandchild, nullptr, 0);
          }
        }) {}
  ~ForkingThread() {
    running_ = false;
    thread_.join();
  }

 private:
  std::atomic<bool> running_{true};
  std::thread thread_;
};

// One thread forks (as a process map or a user's own fork() does) while another replaces the default
// context: fork()'s prepare handler takes the fork-safe locks in one order, the replacement must never
// take them in the other.
TEST(DefaultContextAndFork, ReplacingTheDefaultWhileAnotherThreadForksNeverDeadlocks) {
  const int status = StatusOfChildWithin(
      [] {
        const ForkingThread forker;
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        for (int i = 0; std::chrono::steady_clock::now() < end; ++i) {
          set_default_context(i % 2 == 0 ? "processes" : "threads", 1);
        }
        return 0;
      },
      std::chrono::seconds(60));
  EXPECT_EQ(status, 0) << (status == -1 ? "deadlock: the child hung" : "the child failed");
}

TEST(DefaultContextAndFork, TheFirstDefaultContextIsMadeWhileAnotherThreadForksWithoutDeadlock) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    const int status = StatusOfChildWithin(
        [] {
          const ForkingThread forker;
          return default_context().num_workers() > 0 ? 0 : 1;
        },
        std::chrono::seconds(30));
    ASSERT_EQ(status, 0) << "attempt " << attempt << (status == -1 ? ": deadlock, the child hung" : "");
  }
}

// A program's own pthread_atfork child handler that sets the default context: pasha's handlers,
// registered when the library loaded, ran before it and released pasha's locks in the child.
TEST(DefaultContextAndFork, AnAtforkChildHandlerOfTheProgramMaySetTheDefaultContext) {
  const int status = StatusOfChildWithin(
      [] {
        set_default_context("threads", 2);
        pthread_atfork(nullptr, nullptr, [] { set_default_context("serial", 1); });
        const pid_t grandchild = fork();
        if (grandchild == 0) _exit(default_context().num_workers() == 1 ? 0 : 1);
        int grandchild_status = 0;
        waitpid(grandchild, &grandchild_status, 0);
        return WIFEXITED(grandchild_status) ? WEXITSTATUS(grandchild_status) : 2;
      },
      std::chrono::seconds(30));
  EXPECT_EQ(status, 0) << (status == -1 ? "deadlock: the child hung" : "the handler did not take effect");
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
