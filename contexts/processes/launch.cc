#include "contexts/processes/launch.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace pasha::processes {

void close_quietly(int& fd) noexcept {
  if (fd >= 0) close(fd);
  fd = -1;
}

void drain_eventfd(int fd) noexcept {
  std::uint64_t count = 0;
  while (read(fd, &count, sizeof(count)) > 0) {
  }
}

void notify_caller(const Events& events, bool check) noexcept {
  if (events.fd < 0) return;
  if (check) {
    struct stat now {};
    if (fstat(events.fd, &now) != 0 || now.st_dev != events.device || now.st_ino != events.inode) return;
  }
  const std::uint64_t one = 1;
  while (write(events.fd, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
}

void Launch::mark_not_started(int rank, int error) const noexcept {
  for (int r : tree.subtree(rank)) {
    WorkerRecord& record = record_of_rank(r);
    if (r == rank) {
      record.error.record("fork", "worker " + std::to_string(rank - 1) + " could not be forked: " +
                                      std::strerror(error));
    }
    record.state.store(r == rank ? kFailed : kNotStarted, std::memory_order_release);
  }
  block.control.cancelled.store(true, std::memory_order_relaxed);
  notify_caller(events, false);
}

}  // namespace pasha::processes
