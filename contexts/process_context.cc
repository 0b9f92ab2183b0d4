#include "contexts/process_context.h"

#include <poll.h>
#include <signal.h>
#include <stdio_ext.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "contexts/machine.h"

namespace pasha {
namespace {

// Arrays smaller than this are left to page faults in the workers: a few faults cost about as much
// as the system calls that would avoid them.
constexpr std::size_t kPopulateMinBytes = std::size_t{256} << 10;

// Maps over fewer elements than this do not populate at all: a small map touches few pages, and
// populating every large live array would cost far more than the map itself.
constexpr std::size_t kPopulateMinElements = 4096;

// After the first failure, how long the other workers get to stop on their own (they see the cancel
// flag between chunks) before they are killed.
constexpr std::chrono::milliseconds kStopGrace{50};

// How often children are polled with waitpid when no pidfd could be had for them.
constexpr int kPollWithoutPidfdMs = 5;

// glibc 2.36's <sys/pidfd.h> lacks extern "C", so the system calls are made directly.
int open_pidfd(pid_t pid) noexcept { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }
int send_signal_to_pidfd(int pidfd, int signal) noexcept {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0));
}

std::size_t round_up_to_pages(std::size_t bytes) {
  const std::size_t page = page_size();
  if (bytes > SIZE_MAX - (page - 1)) return 0;
  return (bytes + page - 1) / page * page;
}

// An anonymous MAP_SHARED mapping of `length` bytes (a multiple of the page size, > 0).
void* map_shared(std::size_t bytes, std::size_t length) {
  void* memory = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) {
    const int error = errno;
    throw AllocationError("pasha::ProcessContext: cannot map " + std::to_string(bytes) +
                            " bytes of shared memory: " + std::strerror(error));
  }
  return memory;
}

// The live shared mappings of one context, so that forked workers can map them in up front. Entries
// are added and removed only in the process that owns the registry (never in a forked worker, where
// the mutex may have been held by another thread at fork time).
}  // namespace

class ProcessContext::SharedMappings {
 public:
  struct Region {
    char* address;
    std::size_t length;
  };

  void add(void* address, std::size_t length) {
    if (getpid() != owner_) return;
    std::lock_guard lock(mutex_);
    live_.emplace(address, length);
  }

  void remove(void* address) noexcept {
    if (getpid() != owner_) return;
    std::lock_guard lock(mutex_);
    live_.erase(address);
  }

  // The live regions of at least `min_length` bytes.
  std::vector<Region> snapshot(std::size_t min_length) const {
    std::vector<Region> regions;
    std::lock_guard lock(mutex_);
    for (const auto& [address, length] : live_) {
      if (length >= min_length) regions.push_back({static_cast<char*>(address), length});
    }
    return regions;
  }

 private:
  const pid_t owner_ = getpid();
  mutable std::mutex mutex_;
  std::map<void*, std::size_t> live_;
};

namespace {

using SharedMappings = ProcessContext::SharedMappings;

// Unmaps a shared mapping (its full length) and forgets it.
struct Unmap {
  std::size_t length;
  std::shared_ptr<SharedMappings> mappings;

  void operator()(void* address) const noexcept {
    if (mappings) mappings->remove(address);
    munmap(address, length);
  }
};

// What a worker process reports about itself, in shared memory.
struct WorkerRecord {
  static constexpr int kRunning = 0;
  static constexpr int kDone = 1;
  static constexpr int kFailed = 2;

  alignas(64) std::atomic<int> state{kRunning};
  backend::ErrorRecord error;
};
static_assert(std::atomic<int>::is_always_lock_free);

}  // namespace

// The shared block of a ProcessContext: the map's WorkerControl, then one record per worker.
struct ProcessContext::ProcessControl {
  static std::size_t bytes_for(int num_workers) {
    return sizeof(ProcessControl) + static_cast<std::size_t>(num_workers) * sizeof(WorkerRecord);
  }

  WorkerRecord& record(int worker_id) noexcept {
    return reinterpret_cast<WorkerRecord*>(reinterpret_cast<char*>(this) + sizeof(ProcessControl))[worker_id];
  }

  alignas(4096) backend::WorkerControl control;
};

namespace {

using ProcessControl = ProcessContext::ProcessControl;

// One forked worker, as the parent sees it.
struct Child {
  int worker_id = 0;
  pid_t pid = -1;
  int pidfd = -1;  // -1 when pidfd_open was refused: the child is then polled with waitpid
  bool reaped = false;
  bool killed_by_pasha = false;
  bool status_known = true;  // false when someone else reaped it (SIGCHLD ignored, a foreign handler)
  int status = 0;
};

void close_pidfd(Child& child) noexcept {
  if (child.pidfd >= 0) close(child.pidfd);
  child.pidfd = -1;
}

// Reaps the child if it has ended; true once it is reaped.
bool try_reap(Child& child) noexcept {
  if (child.reaped) return true;
  int status = 0;
  pid_t result;
  do {
    result = waitpid(child.pid, &status, WNOHANG);
  } while (result < 0 && errno == EINTR);
  if (result == 0) return false;
  child.reaped = true;
  child.status = status;
  child.status_known = result == child.pid;
  close_pidfd(child);
  return true;
}

void kill_child(Child& child) noexcept {
  if (child.reaped || child.killed_by_pasha) return;
  child.killed_by_pasha = true;
  if (child.pidfd >= 0 && send_signal_to_pidfd(child.pidfd, SIGKILL) == 0) return;
  kill(child.pid, SIGKILL);  // not reaped yet, so the pid is still this child's
}

// Kills and reaps every child that is left; for the paths where the parent gives up.
void kill_and_reap_all(std::vector<Child>& children) noexcept {
  for (Child& child : children) kill_child(child);
  for (Child& child : children) {
    while (!child.reaped) {
      int status = 0;
      const pid_t result = waitpid(child.pid, &status, 0);
      if (result < 0 && errno == EINTR) continue;
      child.reaped = true;
      child.status = status;
      child.status_known = result == child.pid;
    }
    close_pidfd(child);
  }
}

// Why a reaped child failed, if it did.
struct Failure {
  std::string type_name;
  std::string message;
};

std::string signal_name(int signal) {
  const char* abbreviation = sigabbrev_np(signal);
  const char* description = sigdescr_np(signal);
  std::string name = abbreviation != nullptr ? std::string("SIG") + abbreviation : "signal " + std::to_string(signal);
  if (description != nullptr) name += std::string(" (") + description + ")";
  return name;
}

std::optional<Failure> failure_of(const Child& child, WorkerRecord& record) {
  const int state = record.state.load(std::memory_order_acquire);
  if (state == WorkerRecord::kFailed) {
    return Failure{std::string(record.error.type_name_text()), std::string(record.error.message_text())};
  }
  if (state == WorkerRecord::kDone || child.killed_by_pasha) return std::nullopt;
  if (!child.status_known) {
    return Failure{"exit", "worker process " + std::to_string(child.pid) +
                               " ended before finishing its share; its exit status was collected by someone else "
                               "(is SIGCHLD ignored?)"};
  }
  if (WIFSIGNALED(child.status)) {
    return Failure{"signal", "worker process " + std::to_string(child.pid) + " was killed by signal " +
                                 signal_name(WTERMSIG(child.status))};
  }
  return Failure{"exit", "worker process " + std::to_string(child.pid) + " exited with status " +
                             std::to_string(WEXITSTATUS(child.status)) + " before finishing its share"};
}

// Maps in worker `worker_id`'s slice of each region, for the pages that exist (never allocates).
void populate_slices(const std::vector<SharedMappings::Region>& regions, int worker_id, int num_workers) noexcept {
  const std::size_t page = page_size();
  constexpr std::size_t kPagesPerQuery = 4096;
  unsigned char resident[kPagesPerQuery];
  for (const auto& region : regions) {
    const auto cut = [&](int w) {
      const auto bytes = static_cast<unsigned __int128>(region.length) * static_cast<unsigned>(w) /
                         static_cast<unsigned>(num_workers);
      return static_cast<std::size_t>(bytes) / page * page;
    };
    const std::size_t begin = cut(worker_id);
    const std::size_t end = worker_id + 1 == num_workers ? region.length : cut(worker_id + 1);
    for (std::size_t query = begin; query < end; query += kPagesPerQuery * page) {
      const std::size_t pages = std::min(kPagesPerQuery, (end - query) / page);
      char* const base = region.address + query;
      if (mincore(base, pages * page, resident) != 0) return;
      for (std::size_t first = 0; first < pages;) {
        if ((resident[first] & 1) == 0) {
          ++first;
          continue;
        }
        std::size_t last = first;
        while (last < pages && (resident[last] & 1) != 0) ++last;
        if (madvise(base + first * page, (last - first) * page, MADV_POPULATE_READ) != 0 && errno == EINVAL) {
          return;  // a kernel older than 5.14: page faults will do
        }
        first = last;
      }
    }
  }
}

void flush_if_pending(FILE* stream) noexcept {
  if (__fpending(stream) > 0) std::fflush(stream);
}

// The life of a worker process after fork. Never returns.
[[noreturn]] void run_child(Context& context, const BindingPlan& plan, backend::Job& job, ProcessControl& shared,
                            int worker_id, pid_t parent, const std::vector<SharedMappings::Region>& regions) noexcept {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(1);  // the caller died before PR_SET_PDEATHSIG took effect
  WorkerRecord& record = shared.record(worker_id);
  try {
    // The child has a single thread, so binding it binds the process (threads it starts inherit the
    // cpuset) at the cost of one sched_setaffinity, where binding "the process" scans /proc/self/task.
    if (!plan.bind_this_thread(worker_id)) {
      throw std::runtime_error("pasha::ProcessContext: the OS refused to bind worker " + std::to_string(worker_id) +
                               " to cpuset " + plan.cpuset(worker_id) +
                               " (use pasha::Binding::none to run unbound)");
    }
    populate_slices(regions, worker_id, job.num_active_workers());
    backend::run_worker(context, job, worker_id, shared.control);
    record.state.store(WorkerRecord::kDone, std::memory_order_release);
  } catch (...) {
    record.error.record_current_exception();
    record.state.store(WorkerRecord::kFailed, std::memory_order_release);
    shared.control.cancelled.store(true, std::memory_order_relaxed);
  }
  // The caller's buffers were flushed before the fork, so whatever is pending is this worker's own.
  flush_if_pending(stdout);
  flush_if_pending(stderr);
  _exit(0);
}

// Waits for every child, stopping the rest after the first failure. Returns the failure of the lowest
// failed worker id, if any.
std::optional<std::pair<int, Failure>> supervise(std::vector<Child>& children, ProcessControl& shared) {
  using Clock = std::chrono::steady_clock;
  std::optional<Clock::time_point> kill_deadline;
  bool killed_all = false;
  std::vector<std::optional<Failure>> failures(children.size());
  std::vector<pollfd> fds;
  std::vector<std::size_t> fd_child;
  fds.reserve(children.size());
  fd_child.reserve(children.size());

  std::size_t unreaped = children.size();
  while (unreaped > 0) {
    fds.clear();
    fd_child.clear();
    bool unwatched = false;
    for (std::size_t i = 0; i < children.size(); ++i) {
      if (children[i].reaped) continue;
      if (children[i].pidfd < 0) {
        unwatched = true;
        continue;
      }
      fds.push_back({children[i].pidfd, POLLIN, 0});
      fd_child.push_back(i);
    }
    int timeout_ms = unwatched ? kPollWithoutPidfdMs : -1;
    if (kill_deadline && !killed_all) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*kill_deadline - Clock::now()).count();
      const int left_ms = static_cast<int>(std::max<decltype(left)>(0, left));
      timeout_ms = timeout_ms < 0 ? left_ms : std::min(timeout_ms, left_ms);
    }
    if (poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), "pasha::ProcessContext: poll on worker pidfds");
    }

    std::vector<bool> ready(children.size(), false);
    for (std::size_t k = 0; k < fds.size(); ++k) ready[fd_child[k]] = fds[k].revents != 0;
    for (std::size_t i = 0; i < children.size(); ++i) {
      Child& child = children[i];
      if (child.reaped || (child.pidfd >= 0 && !ready[i])) continue;
      if (!try_reap(child)) continue;
      --unreaped;
      failures[i] = failure_of(child, shared.record(child.worker_id));
      if (failures[i] && !kill_deadline) {
        shared.control.cancelled.store(true, std::memory_order_relaxed);
        kill_deadline = Clock::now() + kStopGrace;
      }
    }
    if (kill_deadline && !killed_all && unreaped > 0 && Clock::now() >= *kill_deadline) {
      for (Child& child : children) kill_child(child);
      killed_all = true;
    }
  }

  for (std::size_t i = 0; i < children.size(); ++i) {
    if (failures[i]) return std::pair{children[i].worker_id, std::move(*failures[i])};
  }
  return std::nullopt;
}

}  // namespace

ProcessContext::ProcessContext() : ProcessContext(default_num_workers()) {}

ProcessContext::ProcessContext(int num_workers, Binding binding)
    : BoundContext(num_workers, binding), mappings_(std::make_shared<SharedMappings>()) {
  const std::size_t bytes = ProcessControl::bytes_for(num_workers);
  const std::size_t length = round_up_to_pages(bytes);
  void* memory = map_shared(bytes, length);
  control_memory_ = std::shared_ptr<void>(memory, Unmap{length, nullptr});
  control_ = new (memory) ProcessControl;
  for (int w = 0; w < num_workers; ++w) new (&control_->record(w)) WorkerRecord;
}

ProcessContext::~ProcessContext() = default;

std::shared_ptr<void> ProcessContext::allocate(std::size_t bytes) {
  const std::size_t length = round_up_to_pages(std::max<std::size_t>(bytes, 1));
  if (length == 0) {
    throw AllocationError("pasha::ProcessContext: cannot map " + std::to_string(bytes) +
                                    " bytes of shared memory: the size is too large");
  }
  void* memory = map_shared(bytes, length);
  std::shared_ptr<void> owner(memory, Unmap{length, nullptr});  // unmaps if what follows throws
  mappings_->add(memory, length);
  std::get_deleter<Unmap>(owner)->mappings = mappings_;
  return owner;
}

void ProcessContext::launch(backend::Job& job) {
  const int num_active = job.num_active_workers();
  if (num_active == 0) return;

  ProcessControl& shared = *control_;
  shared.control.cancelled.store(false, std::memory_order_relaxed);
  shared.control.next_position.store(0, std::memory_order_relaxed);
  for (int w = 0; w < num_active; ++w) {
    shared.record(w).state.store(WorkerRecord::kRunning, std::memory_order_relaxed);
  }
  const auto regions = job.num_elements() >= kPopulateMinElements
                           ? mappings_->snapshot(kPopulateMinBytes)
                           : std::vector<SharedMappings::Region>();
  std::vector<Child> children;
  children.reserve(static_cast<std::size_t>(num_active));

  const pid_t parent = getpid();
  std::fflush(nullptr);  // or the children's copies of pending output could be written again
  std::optional<std::pair<int, Failure>> failure;
  try {
    for (int w = 0; w < num_active; ++w) {
      const pid_t pid = fork();
      if (pid == 0) run_child(*this, plan_, job, shared, w, parent, regions);
      if (pid < 0) {
        throw std::system_error(errno, std::generic_category(),
                                "pasha::ProcessContext: cannot fork worker " + std::to_string(w));
      }
      children.push_back({.worker_id = w, .pid = pid, .pidfd = open_pidfd(pid)});
    }
    failure = supervise(children, shared);
  } catch (...) {
    shared.control.cancelled.store(true, std::memory_order_relaxed);
    kill_and_reap_all(children);
    throw;
  }
  if (failure) {
    backend::ErrorRecord record;
    record.record(failure->second.type_name, failure->second.message);
    record.throw_worker_error(failure->first);
  }
}

}  // namespace pasha
