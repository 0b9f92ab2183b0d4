// The progress report's text (pasha/core/detail/progress.h); that maps report is the conformance suite's.
#include "pasha/core/detail/progress.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

namespace pasha::detail {
namespace {

std::string read_all(int fd) {
  std::string text;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<std::size_t>(n));
  return text;
}

TEST(ProgressReport, ALineGivesThePercentageCountRateAndTimeLeft) {
  EXPECT_EQ(ProgressReport::line(250, 1000, 2.0, false), "pasha:  25%  250/1000  125/s  0:06 left");
  EXPECT_EQ(ProgressReport::line(1000, 1000, 4.0, false), "pasha: 100%  1000/1000  250/s  0:04 elapsed");
  EXPECT_EQ(ProgressReport::line(500, 1000, 1.0, true),
            "pasha: [############............]  50%  500/1000  500/s  0:01 left");
  EXPECT_EQ(ProgressReport::line(0, 0, 0.4, false), "pasha: 100%  0/0  0/s  0:00 elapsed");
  EXPECT_EQ(ProgressReport::line(120000, SIZE_MAX, 3661.0, false), "pasha: 120000 done  33/s  1:01:01 elapsed");
  EXPECT_EQ(ProgressReport::line(3'000'000, 6'000'000, 1.0, false), "pasha:  50%  3000000/6000000  3.0M/s  0:01 left");
}

TEST(ProgressReport, WritesALineEveryIntervalAndALastOneAtTheEnd) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  std::atomic<std::size_t> done{0};
  {
    ProgressReport report(done, 10, 1.0, std::chrono::milliseconds(10), pipe_fds[1], false);
    for (int i = 0; i < 10; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      done.fetch_add(1);
    }
    report.finish(true);
  }
  ::close(pipe_fds[1]);
  const std::string text = read_all(pipe_fds[0]);
  ::close(pipe_fds[0]);
  std::size_t lines = 0;
  for (char c : text) lines += c == '\n';
  EXPECT_GE(lines, 2u) << text;  // at least one periodic line (50 ms at 10 ms intervals) and the last
  EXPECT_NE(text.find("100%  10/10"), std::string::npos) << text;
  EXPECT_EQ(text.find("failed"), std::string::npos) << text;
}

TEST(ProgressReport, TheLongestIntervalMeansTheLastLineOnly) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  std::atomic<std::size_t> done{0};
  {
    ProgressReport report(done, 10, 1.0, std::chrono::milliseconds::max(), pipe_fds[1], false);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    done = 10;
    report.finish(true);
  }
  ::close(pipe_fds[1]);
  const std::string text = read_all(pipe_fds[0]);
  ::close(pipe_fds[0]);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;  // not a line per wake-up of an overflowed wait
  EXPECT_NE(text.find("100%  10/10"), std::string::npos) << text;
}

TEST(ProgressReport, AFullPipeNobodyReadsDoesNotStallTheMapAndAClosedOneDoesNotKillIt) {
  int full[2];
  ASSERT_EQ(::pipe(full), 0);
  ASSERT_EQ(::fcntl(full[1], F_SETFL, O_NONBLOCK), 0);
  while (::write(full[1], "xxxxxxxxxxxxxxxx", 16) > 0) {
  }
  ASSERT_EQ(::fcntl(full[1], F_SETFL, 0), 0);  // blocking again, as stderr would be
  std::atomic<std::size_t> done{5};
  const auto start = std::chrono::steady_clock::now();
  {
    ProgressReport report(done, 10, 1.0, std::chrono::milliseconds(1), full[1], false);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    report.finish(true);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10)) << "the report waited for a reader";
  ::close(full[0]);
  ::close(full[1]);

  int closed[2];
  ASSERT_EQ(::pipe(closed), 0);
  ::close(closed[0]);  // a write now raises SIGPIPE, which would end the process
  {
    ProgressReport report(done, 10, 1.0, std::chrono::milliseconds(1), closed[1], true);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    report.finish(false);
  }
  ::close(closed[1]);
  SUCCEED() << "still alive";
}

}  // namespace
}  // namespace pasha::detail
