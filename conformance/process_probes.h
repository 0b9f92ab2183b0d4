// What a test can observe of this process's resources, to prove that nothing leaks: open file
// descriptors, child processes, mapped memory. Linux /proc based; for tests only.
#ifndef PASHA_CONFORMANCE_PROCESS_PROBES_H_
#define PASHA_CONFORMANCE_PROCESS_PROBES_H_

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <vector>

namespace pasha::conformance {

// The number of open file descriptors of this process.
std::size_t open_fd_count();

// The pids of this process's children (of all its threads), zombies included.
std::vector<pid_t> child_pids();

// The total size of this process's mappings, in bytes.
std::size_t mapped_bytes();

// The lines of /proc/self/maps that mention `needle`.
std::vector<std::string> mappings_matching(const std::string& needle);

// The Linux thread id of the calling thread.
pid_t this_thread_id();

// Waits until thread `tid` of this process is blocked in system call `syscall_number` (SYS_read,
// SYS_futex, ...), as /proc/self/task/<tid>/syscall says, for at most `limit_ms`. Returns whether it
// was. For tests that need another thread to be inside a window (holding a lock, blocked in a read).
bool wait_until_blocked_in(pid_t tid, long syscall_number, int limit_ms = 10'000);

// A snapshot of the three, for before/after comparisons.
struct ResourceSnapshot {
  std::size_t fds = 0;
  std::size_t children = 0;
  std::size_t mapped = 0;
  static ResourceSnapshot take();
};

}  // namespace pasha::conformance

#endif  // PASHA_CONFORMANCE_PROCESS_PROBES_H_
