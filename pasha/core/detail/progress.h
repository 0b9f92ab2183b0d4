// ProgressReport: the progress line of a map (MapOptions::progress). Internal to pasha.
//
// A thread of the caller's that reads the map's counter of finished elements and writes to stderr
// (with write(2), never through stdio, so that it takes no lock a forked worker could inherit): on a
// terminal a bar redrawn five times a second, otherwise a line every `every`; and a last line when
// the report ends. It never blocks a map: what stderr cannot take at once (a full pipe) is dropped,
// and a closed pipe raises no SIGPIPE.
#ifndef PASHA_CORE_DETAIL_PROGRESS_H_
#define PASHA_CORE_DETAIL_PROGRESS_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <thread>

namespace pasha::detail {

class ProgressReport {
 public:
  // `total` elements (or SIZE_MAX when unknown), of which `done` counts the share `share` (in (0, 1]:
  // the part this process's counter sees of a map that spans several address spaces) and stands for
  // done / share of them while the map runs; a report that finishes with success shows them all.
  // `fd` is where it writes (stderr); `terminal` chooses the live bar.
  ProgressReport(const std::atomic<std::size_t>& done, std::size_t total, double share,
                 std::chrono::milliseconds every, int fd, bool terminal);
  // Ends the report (as failed, if finish was not called).
  ~ProgressReport();
  ProgressReport(const ProgressReport&) = delete;
  ProgressReport& operator=(const ProgressReport&) = delete;

  // Has the thread write the last line, and waits for it.
  void finish(bool succeeded);

  // The text of one report: "pasha: [#####.....]  50%  500/1000  1.2k/s  0:05 left" (the bar on a
  // terminal only). Exposed for tests.
  static std::string line(std::size_t done, std::size_t total, double seconds, bool bar);

 private:
  void run();
  void write_text(const std::string& text) const;
  // What the counter stands for: every element, when the map succeeded and the total is known.
  std::size_t elements_done() const;

  const std::atomic<std::size_t>& done_;
  const std::size_t total_;
  const double share_;
  const std::chrono::milliseconds every_;
  const int fd_;
  const bool terminal_;
  const std::chrono::steady_clock::time_point start_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool finished_ = false;
  bool succeeded_ = false;
  std::thread thread_;
};

}  // namespace pasha::detail

#endif  // PASHA_CORE_DETAIL_PROGRESS_H_
