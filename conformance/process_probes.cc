#include "conformance/process_probes.h"

#include <dirent.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace pasha::conformance {

std::size_t open_fd_count() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++count;
  return count - 1;  // the directory iterator's own descriptor
}

std::vector<pid_t> child_pids() {
  std::vector<pid_t> pids;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream children(task.path() / "children");
    pid_t pid = 0;
    while (children >> pid) pids.push_back(pid);
  }
  return pids;
}

std::size_t mapped_bytes() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  std::size_t total = 0;
  while (std::getline(maps, line)) {
    const auto dash = line.find('-');
    const auto space = line.find(' ');
    const unsigned long long begin = std::strtoull(line.substr(0, dash).c_str(), nullptr, 16);
    const unsigned long long end = std::strtoull(line.substr(dash + 1, space - dash - 1).c_str(), nullptr, 16);
    total += static_cast<std::size_t>(end - begin);
  }
  return total;
}

std::vector<std::string> mappings_matching(const std::string& needle) {
  std::ifstream maps("/proc/self/maps");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find(needle) != std::string::npos) lines.push_back(line);
  }
  return lines;
}

ResourceSnapshot ResourceSnapshot::take() { return {open_fd_count(), child_pids().size(), mapped_bytes()}; }

pid_t this_thread_id() { return static_cast<pid_t>(syscall(SYS_gettid)); }

bool wait_until_blocked_in(pid_t tid, long syscall_number, int limit_ms) {
  const std::string path = "/proc/self/task/" + std::to_string(tid) + "/syscall";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(limit_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(path);
    long number = -1;
    if (in >> number && number == syscall_number) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

}  // namespace pasha::conformance
