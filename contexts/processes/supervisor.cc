#include "contexts/processes/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>

#include "contexts/common/futex.h"
#include "contexts/processes/worker.h"

namespace pasha::processes {
namespace {

// After the first failure, how long the other workers get to stop on their own before they are
// killed: in their kernels (they see the cancel flag between chunks), and in their worker hooks.
constexpr std::chrono::milliseconds kKernelGrace{50};
constexpr std::chrono::seconds kHookGrace{5};

// Past the kernels' grace after a failure, how often the workers still running are looked at.
constexpr std::chrono::milliseconds kWindDownLook{10};

// What /proc says of a process: whether it wants the CPU (running or runnable), and the CPU time it
// has had (user and system, in clock ticks). nullopt when it cannot be read (the process has gone).
struct CpuUse {
  bool wants_cpu = false;
  std::uint64_t ticks = 0;
};
std::optional<CpuUse> cpu_use(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buffer[1024];
  const ssize_t n = ::read(fd, buffer, sizeof buffer - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  buffer[n] = '\0';
  // After the name (which may hold spaces and parentheses): state, then fields 4 to 13, then utime
  // and stime (fields 14 and 15).
  const char* after_name = std::strrchr(buffer, ')');
  if (after_name == nullptr) return std::nullopt;
  char state = 0;
  unsigned long long utime = 0, stime = 0;
  if (std::sscanf(after_name + 1, " %c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &state, &utime,
                  &stime) != 3) {
    return std::nullopt;
  }
  return CpuUse{.wants_cpu = state == 'R', .ticks = utime + stime};
}

// When a worker that starts others dies, how long the workers it may have started get to announce
// themselves before they are taken as never started.
constexpr std::chrono::milliseconds kAnnounceGrace{200};

// How often children are polled with waitpid when no pidfd could be had for them.
constexpr int kPollWithoutPidfdMs = 5;

// waitid's idtype for a pidfd (P_PIDFD, Linux 5.4).
constexpr idtype_t kByPidfd = static_cast<idtype_t>(3);

// glibc 2.36's <sys/pidfd.h> lacks extern "C", so the system calls are made directly.
int open_pidfd(pid_t pid) noexcept { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }
int send_signal_to_pidfd(int pidfd, int signal) noexcept {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0));
}

std::string signal_name(int signal) {
  const char* abbreviation = sigabbrev_np(signal);
  const char* description = sigdescr_np(signal);
  std::string name = abbreviation != nullptr ? std::string("SIG") + abbreviation : "signal " + std::to_string(signal);
  if (description != nullptr) name += std::string(" (") + description + ")";
  return name;
}

// Why a worker's exit status was gone before pasha could take it, as far as this process's SIGCHLD
// disposition tells, and what to do about it.
std::string why_the_status_is_gone() {
  struct sigaction action {};
  if (sigaction(SIGCHLD, nullptr, &action) == 0 &&
      (action.sa_handler == SIG_IGN || (action.sa_flags & SA_NOCLDWAIT) != 0)) {
    return "SIGCHLD is ignored (or SA_NOCLDWAIT is set), so the kernel discarded its exit status and pasha cannot "
           "tell whether a signal or an exit ended it (leave SIGCHLD at its default while pasha maps)";
  }
  return "its exit status was taken by a waitpid of the program's (a SIGCHLD handler, or a waitpid(-1) in another "
         "thread), so pasha cannot tell whether a signal or an exit ended it (reap only your own children, with "
         "waitpid(pid), or call wait_for_exited_workers() first and do not reap while a map runs)";
}

}  // namespace

std::optional<int> reap(const Exiting& child, bool block, bool& collected_elsewhere) noexcept {
  const int options = WEXITED | (block ? 0 : WNOHANG);
  for (;;) {
    siginfo_t info{};
    const int result = child.pidfd >= 0 ? waitid(kByPidfd, static_cast<id_t>(child.pidfd), &info, options)
                                        : waitid(P_PID, static_cast<id_t>(child.pid), &info, options);
    if (result < 0 && errno == EINTR) continue;
    if (result < 0) {  // ECHILD: not our child any more
      collected_elsewhere = true;
      return 0;
    }
    if (info.si_pid == 0) return std::nullopt;
    if (info.si_code == CLD_EXITED) return W_EXITCODE(info.si_status, 0);
    return W_EXITCODE(0, info.si_status);  // killed (or dumped) by signal si_status
  }
}

Supervisor::~Supervisor() {
  if (!settled_) abandon();
}

void Supervisor::start() {
  for (int rank : launch_.tree.children(0)) {
    const pid_t pid = backend::fork_between_handlers(fork_worker);
    if (pid == 0) worker_process(launch_, rank, false);
    if (pid < 0) {
      launch_.mark_not_started(rank, errno);
      continue;
    }
    adopt(rank - 1, pid);
    adopt_announced();
  }
}

std::optional<int> Supervisor::supervise() {
  std::vector<pollfd> fds;
  std::vector<Child*> owners;
  while (update() > 0) {
    fds.assign(1, {launch_.events.fd, POLLIN, 0});
    owners.assign(1, nullptr);
    bool unwatched = false;
    for (Child& child : children_) {
      if (!child.adopted || child.reaped) continue;
      if (child.process.pidfd >= 0) {
        fds.push_back({child.process.pidfd, POLLIN, 0});
        owners.push_back(&child);
      } else {
        unwatched = child.maybe_exited = true;
      }
    }
    int timeout = timeout_ms(unwatched);
    if (launch_.job.checks_caller()) {
      const auto interval = static_cast<int>(backend::Job::kCallerCheckInterval.count());
      timeout = timeout < 0 ? interval : std::min(timeout, interval);
    }
    if (poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), "pasha::ProcessContext: poll");
    }
    launch_.job.check_caller();  // may throw: the destructor then stops every worker
    for (std::size_t k = 1; k < fds.size(); ++k) {
      if (fds[k].revents != 0) owners[k]->maybe_exited = true;
    }
    drain_events();
  }
  for (int w = 0; w < num_workers_; ++w) {
    if (children_[static_cast<std::size_t>(w)].failure) return w;
  }
  return std::nullopt;
}

std::vector<ProcessContext::Exiting> Supervisor::release_exiting() {
  settled_ = true;
  std::vector<ProcessContext::Exiting> exiting;
  for (Child& child : children_) {
    if (!child.adopted || child.reaped) continue;
    bool elsewhere = false;
    if (reap(child.process, false, elsewhere)) {
      close_quietly(child.process.pidfd);
    } else {
      exiting.push_back(child.process);
    }
  }
  return exiting;
}

[[noreturn]] void Supervisor::reap_all_and_throw(int worker_id) {
  settled_ = true;
  for (Child& child : children_) wait_reaped(child);
  children_[static_cast<std::size_t>(worker_id)].failure->throw_worker_error(worker_id);
}

void Supervisor::adopt(int w, pid_t pid) {
  watch(children_[static_cast<std::size_t>(w)], pid);
  record(w).go.store(kGo, std::memory_order_release);
  futex_wake_all(record(w).go, FutexScope::shared);
}

void Supervisor::watch(Child& child, pid_t pid) noexcept {
  child.process.pid = pid;
  child.process.pidfd = open_pidfd(pid);
  child.adopted = true;
}

void Supervisor::adopt_announced() {
  for (int w = 0; w < num_workers_; ++w) {
    const Child& child = children_[static_cast<std::size_t>(w)];
    if (child.adopted || child.finished) continue;
    if (const pid_t pid = record(w).pid.load(std::memory_order_acquire); pid > 0) adopt(w, pid);
  }
}

int Supervisor::update() {
  adopt_announced();
  const auto now = Clock::now();
  int unfinished = 0;
  bool all_exist = true;
  for (int w = 0; w < num_workers_; ++w) {
    Child& child = children_[static_cast<std::size_t>(w)];
    if (child.adopted && !child.reaped && child.maybe_exited) check_exit(child);
    if (!child.finished) check_finished(w, child, now);
    if (!child.finished) ++unfinished;
    if (!child.adopted && !child.finished) all_exist = false;
  }
  if (all_exist) release_exits();
  if (first_failure_ && !cancelled_at_) {
    cancelled_at_ = now;
    launch_.block.control.cancelled.store(true, std::memory_order_relaxed);
    for (Child& child : children_) {
      if (!child.adopted || child.finished) continue;
      if (const std::optional<CpuUse> use = cpu_use(child.process.pid)) child.cpu_ticks_at_cancel = use->ticks;
    }
  }
  if (cancelled_at_) kill_overdue(now);
  return unfinished;
}

void Supervisor::check_exit(Child& child) noexcept {
  child.maybe_exited = false;
  bool elsewhere = false;
  const std::optional<int> status = reap(child.process, false, elsewhere);
  if (!status) return;
  child.reaped = true;
  close_quietly(child.process.pidfd);
  child.status = *status;
  child.collected_elsewhere = elsewhere;
}

void Supervisor::check_finished(int w, Child& child, Clock::time_point now) {
  switch (record(w).state.load(std::memory_order_acquire)) {
    case kDone:
    case kNotStarted:
      child.finished = true;
      return;
    case kFailed:
      fail(child, record(w).error);
      return;
    default:
      break;
  }
  if (child.reaped) {
    if (child.killed_by_pasha) {
      child.finished = true;
    } else {
      fail(child, death_of(child));
    }
    return;
  }
  if (!child.adopted) check_unannounced(w, child, now);
}

void Supervisor::check_unannounced(int w, Child& child, Clock::time_point now) {
  const int starter = launch_.tree.starter(w + 1);
  if (starter == 0 || !children_[static_cast<std::size_t>(starter - 1)].reaped) return;
  if (!child.announce_deadline) child.announce_deadline = now + kAnnounceGrace;
  if (now >= *child.announce_deadline) child.finished = true;
}

void Supervisor::fail(Child& child, const backend::ErrorRecord& failure) {
  child.finished = true;
  child.failure = std::make_unique<backend::ErrorRecord>(failure);
  first_failure_ = true;
}

backend::ErrorRecord Supervisor::death_of(const Child& child) const {
  backend::ErrorRecord failure;
  const std::string who = "worker process " + std::to_string(child.process.pid);
  if (child.collected_elsewhere) {
    failure.record("exit", who + " ended before finishing its share; " + why_the_status_is_gone());
  } else if (WIFSIGNALED(child.status)) {
    failure.record("signal", who + " was killed by signal " + signal_name(WTERMSIG(child.status)));
  } else {
    failure.record("exit", who + " exited with status " + std::to_string(WEXITSTATUS(child.status)) +
                               " before finishing its share");
  }
  return failure;
}

void Supervisor::release_exits() noexcept {
  if (launch_.block.exits_released.exchange(1, std::memory_order_acq_rel) == 0) {
    futex_wake_all(launch_.block.exits_released, FutexScope::shared);
  }
}

void Supervisor::kill_overdue(Clock::time_point now) noexcept {
  static const long ticks_per_second = sysconf(_SC_CLK_TCK);
  const auto starved = [&](const Child& child) {
    if (!child.cpu_ticks_at_cancel || ticks_per_second <= 0 || now >= *cancelled_at_ + kHookGrace) return false;
    const std::optional<CpuUse> use = cpu_use(child.process.pid);
    if (!use || !use->wants_cpu) return false;
    const auto had = std::chrono::milliseconds(static_cast<std::int64_t>(
        (use->ticks - *child.cpu_ticks_at_cancel) * 1000 / static_cast<std::uint64_t>(ticks_per_second)));
    return had < kKernelGrace;
  };
  for (int w = 0; w < num_workers_; ++w) {
    Child& child = children_[static_cast<std::size_t>(w)];
    if (!child.adopted || child.reaped || child.finished || child.killed_by_pasha) continue;
    const std::uint32_t phase = record(w).phase.load(std::memory_order_acquire);
    if (phase == kKernel && now >= *cancelled_at_ + kKernelGrace) {
      if (!starved(child)) kill_child(child);
    } else if (phase == kHooks && now >= *cancelled_at_ + kHookGrace) {
      kill_child(child);
    }
  }
}

void Supervisor::kill_child(Child& child) noexcept {
  child.killed_by_pasha = true;
  if (child.process.pidfd >= 0 && send_signal_to_pidfd(child.process.pidfd, SIGKILL) == 0) return;
  kill(child.process.pid, SIGKILL);  // not reaped yet, so the pid is still this child's
}

int Supervisor::timeout_ms(bool unwatched) const {
  std::optional<Clock::time_point> next;
  const auto consider = [&](Clock::time_point t) { next = next ? std::min(*next, t) : t; };
  if (cancelled_at_) {
    // Past the kernels' grace, a look every kWindDownLook (not a spin) until the workers are done.
    const auto now = Clock::now();
    consider(std::max(*cancelled_at_ + kKernelGrace, now + kWindDownLook));
    consider(*cancelled_at_ + kHookGrace);
  }
  for (const Child& child : children_) {
    if (child.announce_deadline && !child.finished) consider(*child.announce_deadline);
  }
  int timeout = unwatched ? kPollWithoutPidfdMs : -1;
  if (next) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(*next - Clock::now()).count();
    const int left_ms = static_cast<int>(std::clamp<decltype(left)>(left, 0, 60'000));
    timeout = timeout < 0 ? left_ms : std::min(timeout, left_ms);
  }
  return timeout;
}

void Supervisor::wait_reaped(Child& child) noexcept {
  if (!child.adopted || child.reaped) return;
  bool elsewhere = false;
  reap(child.process, true, elsewhere);
  child.reaped = true;
  close_quietly(child.process.pidfd);
}

void Supervisor::abandon() noexcept {
  launch_.block.control.cancelled.store(true, std::memory_order_relaxed);
  launch_.block.generation.fetch_add(1, std::memory_order_acq_rel);
  release_exits();
  for (int w = 0; w < num_workers_; ++w) {
    record(w).go.store(kLeave, std::memory_order_release);
    futex_wake_all(record(w).go, FutexScope::shared);
  }
  // Workers being started now announce themselves within moments; take them too.
  const auto deadline = Clock::now() + kAnnounceGrace;
  for (;;) {
    for (int w = 0; w < num_workers_; ++w) {
      Child& child = children_[static_cast<std::size_t>(w)];
      const pid_t pid = record(w).pid.load(std::memory_order_acquire);
      if (!child.adopted && pid > 0) watch(child, pid);
      if (child.adopted && !child.reaped && !child.killed_by_pasha) kill_child(child);
    }
    // A worker whose starter existed may exist too, not yet announced (its starter may have been
    // killed between the clone and the announcement, and a new process runs the fork handlers
    // first): it is waited for until the deadline, so that it is watched and reaped, never left.
    bool waiting = false;
    for (int w = 0; w < num_workers_; ++w) {
      const Child& child = children_[static_cast<std::size_t>(w)];
      const int starter = launch_.tree.starter(w + 1);
      const bool starter_existed = starter > 0 && children_[static_cast<std::size_t>(starter - 1)].adopted;
      if (!child.adopted && record(w).state.load() == kRunning && starter_existed) waiting = true;
    }
    for (Child& child : children_) {
      if (child.adopted && !child.reaped) check_exit(child);
    }
    if (!waiting || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (Child& child : children_) wait_reaped(child);
  settled_ = true;
}

}  // namespace pasha::processes
