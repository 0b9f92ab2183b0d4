#include "pasha/core/detail/progress.h"

#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <csignal>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>

namespace pasha::detail {
namespace {

// 1234 -> "1.2k", 5600000 -> "5.6M".
std::string short_count(double value) {
  char text[32];
  if (value >= 1e9) {
    std::snprintf(text, sizeof text, "%.1fG", value / 1e9);
  } else if (value >= 1e6) {
    std::snprintf(text, sizeof text, "%.1fM", value / 1e6);
  } else if (value >= 1e4) {
    std::snprintf(text, sizeof text, "%.1fk", value / 1e3);
  } else {
    std::snprintf(text, sizeof text, "%.0f", value);
  }
  return text;
}

// 75 -> "1:15", 3725 -> "1:02:05".
std::string clock_time(double seconds) {
  const auto s = static_cast<std::uint64_t>(std::max(0.0, seconds) + 0.5);
  char text[32];
  if (s >= 3600) {
    std::snprintf(text, sizeof text, "%" PRIu64 ":%02" PRIu64 ":%02" PRIu64, s / 3600, s / 60 % 60, s % 60);
  } else {
    std::snprintf(text, sizeof text, "%" PRIu64 ":%02" PRIu64, s / 60, s % 60);
  }
  return text;
}

// The interval between lines, clamped: a longer one would overflow the clock in wait_for, which then
// returns at once.
constexpr std::chrono::milliseconds kShortestInterval{1};
constexpr std::chrono::milliseconds kLongestInterval = std::chrono::hours(24 * 365);

}  // namespace

ProgressReport::ProgressReport(const std::atomic<std::size_t>& done, std::size_t total, double share,
                               std::chrono::milliseconds every, int fd, bool terminal)
    : done_(done),
      total_(total),
      share_(share > 0 && share <= 1 ? share : 1.0),
      every_(terminal ? std::chrono::milliseconds(200) : std::clamp(every, kShortestInterval, kLongestInterval)),
      fd_(fd),
      terminal_(terminal),
      start_(std::chrono::steady_clock::now()),
      thread_([this] { run(); }) {}

ProgressReport::~ProgressReport() { finish(false); }

void ProgressReport::finish(bool succeeded) {
  {
    std::lock_guard lock(mutex_);
    if (finished_) return;
    finished_ = true;
    succeeded_ = succeeded;
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void ProgressReport::run() {
  // Writes happen here only, with SIGPIPE blocked: a report to a closed pipe must not end the process.
  sigset_t pipe_signal;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
  const auto seconds = [this] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); };
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, every_, [this] { return stop_; })) {
    const std::string text = line(elements_done(), total_, seconds(), terminal_);
    write_text(terminal_ ? "\r" + text + "\033[K" : text + "\n");
  }
  std::string last = line(succeeded_ && total_ != SIZE_MAX ? total_ : elements_done(), total_, seconds(), terminal_);
  if (!succeeded_) last += "  (failed)";
  write_text(terminal_ ? "\r" + last + "\033[K\n" : last + "\n");
  // A SIGPIPE raised by these writes stays pending on this thread, and goes with it.
}

std::size_t ProgressReport::elements_done() const {
  const std::size_t counted = done_.load(std::memory_order_relaxed);
  if (share_ == 1.0) return counted;
  return static_cast<std::size_t>(static_cast<double>(counted) / share_ + 0.5);
}

void ProgressReport::write_text(const std::string& text) const {
  // Never waits for a reader: a line that stderr cannot take now (a full pipe nobody reads) is dropped,
  // and so is the rest of one that it took in part. A report is not worth stalling a map for.
  std::size_t written = 0;
  while (written < text.size()) {
    pollfd ready{.fd = fd_, .events = POLLOUT, .revents = 0};
    if (::poll(&ready, 1, 0) != 1 || (ready.revents & POLLOUT) == 0) return;
    const ssize_t n = ::write(fd_, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    written += static_cast<std::size_t>(n);
  }
}

std::string ProgressReport::line(std::size_t done, std::size_t total, double seconds, bool bar) {
  const bool known = total != SIZE_MAX;
  if (known) done = std::min(done, total);
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
  std::string text = "pasha: ";
  char part[96];
  if (known) {
    const double fraction = total == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(total);
    if (bar) {
      constexpr int kWidth = 24;
      const int filled = static_cast<int>(fraction * kWidth);
      text += "[" + std::string(static_cast<std::size_t>(filled), '#') + std::string(static_cast<std::size_t>(kWidth - filled), '.') + "] ";
    }
    std::snprintf(part, sizeof part, "%3d%%  %zu/%zu", static_cast<int>(fraction * 100), done, total);
    text += part;
  } else {
    std::snprintf(part, sizeof part, "%zu done", done);
    text += part;
  }
  text += "  " + short_count(rate) + "/s";
  if (known && done < total && rate > 0) {
    text += "  " + clock_time(static_cast<double>(total - done) / rate) + " left";
  } else {
    text += "  " + clock_time(seconds) + " elapsed";
  }
  return text;
}

}  // namespace pasha::detail
