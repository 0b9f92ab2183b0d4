#include "contexts/process_context.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio_ext.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ext/stdio_sync_filebuf.h>
#include <iostream>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "contexts/fork_tree.h"
#include "contexts/futex.h"
#include "contexts/shared_memory.h"

namespace pasha {
namespace {

using Clock = std::chrono::steady_clock;

// Arrays smaller than this are left to page faults in the workers: a few faults cost about as much
// as the system calls that would avoid them.
constexpr std::size_t kPopulateMinBytes = std::size_t{256} << 10;

// Maps over fewer elements than this do not populate at all: a small map touches few pages, and
// populating every large live array would cost far more than the map itself.
constexpr std::size_t kPopulateMinElements = 4096;

// After the first failure, how long the other workers get to stop on their own before they are
// killed: in their kernels (they see the cancel flag between chunks), and in their worker hooks.
constexpr std::chrono::milliseconds kKernelGrace{50};
constexpr std::chrono::seconds kHookGrace{5};

// When a worker that starts others dies, how long the workers it may have started get to announce
// themselves before they are taken as never started.
constexpr std::chrono::milliseconds kAnnounceGrace{200};

// How often children are polled with waitpid when no pidfd could be had for them.
constexpr int kPollWithoutPidfdMs = 5;

// How long a worker sleeps between looks at its parent while it waits for the caller.
constexpr std::chrono::milliseconds kWorkerWaitSlice{100};

// A worker's state, as recorded by the worker (and, for workers that could not be forked, by whoever
// tried to fork them).
enum State : std::uint32_t { kRunning = 0, kDone = 1, kFailed = 2, kNotStarted = 3 };
// What a running worker is doing, for the caller's decision to kill it after a sibling failed.
enum Phase : std::uint32_t { kStarting = 0, kHooks = 1, kKernel = 2, kFinished = 3 };
// The caller's word to a worker waiting to start: wait, go (the caller holds a pidfd for it), leave.
enum Go : std::uint32_t { kWait = 0, kGo = 1, kLeave = 2 };

// What one worker process and the caller tell each other, in shared memory.
struct WorkerRecord {
  alignas(64) std::atomic<std::uint32_t> state{kRunning};
  std::atomic<std::uint32_t> phase{kStarting};
  std::atomic<std::uint32_t> go{kWait};
  std::atomic<pid_t> pid{0};
  backend::ErrorRecord error;

  void reset() noexcept {
    state.store(kRunning, std::memory_order_relaxed);
    phase.store(kStarting, std::memory_order_relaxed);
    go.store(kWait, std::memory_order_relaxed);
    pid.store(0, std::memory_order_relaxed);
  }
};
static_assert(std::atomic<pid_t>::is_always_lock_free);

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

}  // namespace

// The block every worker of a map shares with the caller: the map's WorkerControl, the launch's
// generation and exit release, then one record per worker.
struct alignas(64) ProcessContext::ControlBlock {
  backend::WorkerControl control;
  // Counts launches; a worker of an abandoned launch that finds another number leaves.
  std::atomic<std::uint32_t> generation{0};
  // Futex word, 1 once workers that have finished may exit: every worker of the map exists (or the
  // caller gave up on the map).
  std::atomic<std::uint32_t> exits_released{0};

  static std::size_t bytes_for(int num_workers) {
    return sizeof(ControlBlock) + static_cast<std::size_t>(num_workers) * sizeof(WorkerRecord);
  }
  WorkerRecord& record(int worker_id) noexcept {
    return reinterpret_cast<WorkerRecord*>(reinterpret_cast<char*>(this) + sizeof(ControlBlock))[worker_id];
  }
};
static_assert(sizeof(ProcessContext::ControlBlock) % alignof(WorkerRecord) == 0);

// A worker process the caller forked or adopted, as the caller sees it.
struct ProcessContext::Exiting {
  pid_t pid = 0;
  int pidfd = -1;  // -1 when pidfd_open was refused: the child is then polled with waitpid
};

namespace {

using ControlBlock = ProcessContext::ControlBlock;

void close_quietly(int& fd) noexcept {
  if (fd >= 0) close(fd);
  fd = -1;
}

// Reads everything pending from a non-blocking eventfd.
void drain_eventfd(int fd) noexcept {
  std::uint64_t count = 0;
  while (read(fd, &count, sizeof(count)) > 0) {
  }
}

// Reaps `child` if it has ended (or, with `block`, once it has). Returns the wait status, or nullopt
// while it runs; sets `collected_elsewhere` when someone else reaped it (SIGCHLD ignored, a foreign
// waitpid(-1)).
std::optional<int> reap(const ProcessContext::Exiting& child, bool block, bool& collected_elsewhere) noexcept {
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

// The caller's eventfd, where workers tell it that they have started others or finished.
struct Events {
  int fd = -1;
  // What fstat says of it, to recognise it (a kernel may have closed every descriptor and opened
  // files of its own under the same number since).
  dev_t device = 0;
  ino_t inode = 0;
};

// Writes a notification to the caller's eventfd; after user code ran (`check`), only if the
// descriptor still is that eventfd.
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

// The C++ standard streams that keep a buffer of their own (after sync_with_stdio(false)); those
// synchronised with stdio write through stdout and stderr.
template <class Action>
void for_each_buffered_cxx_stream(Action&& action) {
  for (std::ostream* stream : {&std::cout, &std::cerr, &std::clog}) {
    std::streambuf* buffer = stream->rdbuf();
    if (buffer != nullptr && dynamic_cast<__gnu_cxx::stdio_sync_filebuf<char>*>(buffer) == nullptr) action(*buffer);
  }
}

// In the caller, before forking: what is pending in stdout and stderr goes out now, so that workers'
// output follows it. A stream another thread holds is skipped (the worker discards its copy anyway).
void flush_caller_output() noexcept {
  for (FILE* stream : {stdout, stderr}) {
    if (ftrylockfile(stream) == 0) {
      fflush_unlocked(stream);
      funlockfile(stream);
    }
  }
  try {
    for_each_buffered_cxx_stream([](std::streambuf& buffer) { buffer.pubsync(); });
  } catch (...) {
    // A stream's own error; nothing for the map to report.
  }
}

// In a worker: output the caller buffered is the caller's to print. (Each step writes only when there
// is something to do: a page a worker writes is a page it copies.)
void discard_inherited_output() noexcept {
  for (FILE* stream : {stdout, stderr}) {
    if (__fpending(stream) > 0) __fpurge(stream);
  }
}

// In a worker, when its share is over: its own output goes out.
void flush_worker_output() noexcept {
  try {
    for_each_buffered_cxx_stream([](std::streambuf& buffer) { buffer.pubsync(); });
  } catch (...) {
    // A stream's own error; the share is done all the same.
  }
  for (FILE* stream : {stdout, stderr}) {
    if (__fpending(stream) > 0) std::fflush(stream);
  }
}

// The job a worker process runs: the map's job, with the worker's phase recorded around it.
class PhasedJob final : public backend::Job {
 public:
  PhasedJob(backend::Job& job, std::atomic<std::uint32_t>& phase) : job_(job), phase_(phase) { stand_in_for(job); }

  void run(int worker_id, backend::WorkerControl& control) override {
    struct BackToHooks {
      std::atomic<std::uint32_t>& phase;
      ~BackToHooks() { phase.store(kHooks, std::memory_order_release); }
    } back{phase_};
    phase_.store(kKernel, std::memory_order_release);
    job_.run(worker_id, control);
  }

 private:
  backend::Job& job_;
  std::atomic<std::uint32_t>& phase_;
};

// Everything one map's worker processes need; lives in the caller (and so, copied, in every worker).
struct Launch {
  ProcessContext& context;
  backend::Job& job;
  ControlBlock& block;
  const BindingPlan& binding;
  const ForkTree tree;
  const std::vector<SharedMappings::Region> regions;
  const pid_t caller = getpid();
  const Events events;
  const std::uint32_t generation;

  WorkerRecord& record_of_rank(int rank) const noexcept { return block.record(rank - 1); }

  // Records that `rank` could not be forked (a failure) and that the workers it would have started
  // never will be; cancels the map.
  void mark_not_started(int rank, int error) const noexcept {
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
};

[[noreturn]] void worker_process(const Launch& launch, int rank, bool cloned) noexcept;

// In a worker: starts the workers the tree gives this rank, before it runs anything of its own.
void start_children(const Launch& launch, int rank) noexcept {
  for (int child : launch.tree.children(rank)) {
    const pid_t pid = clone_sibling();
    if (pid == 0) worker_process(launch, child, true);
    if (pid < 0) {
      launch.mark_not_started(child, errno);
      continue;
    }
    launch.record_of_rank(child).pid.store(pid, std::memory_order_release);
    notify_caller(launch.events, false);
  }
}

// In a worker: waits for the caller's word. False when the map was abandoned.
bool wait_for_go(const Launch& launch, WorkerRecord& record) noexcept {
  for (;;) {
    const std::uint32_t go = record.go.load(std::memory_order_acquire);
    if (go == kGo) return true;
    if (go == kLeave || launch.block.generation.load(std::memory_order_acquire) != launch.generation) return false;
    futex_wait(record.go, kWait, FutexScope::shared, kWorkerWaitSlice);
    if (getppid() != launch.caller) _exit(1);
  }
}

// In a worker that has finished: waits until every worker of the map exists, so that this process's
// exit (unmapping its copy of the caller's address space) does not compete with the forks.
void wait_for_exit_release(const Launch& launch) noexcept {
  while (launch.block.exits_released.load(std::memory_order_acquire) == 0 &&
         launch.block.generation.load(std::memory_order_acquire) == launch.generation) {
    futex_wait(launch.block.exits_released, 0, FutexScope::shared, kWorkerWaitSlice);
    if (getppid() != launch.caller) _exit(1);
  }
}

// The life of a worker process: announce, start the workers below it in the tree, wait for the
// caller's go, run the share, record the outcome, leave. Never returns.
[[noreturn]] void worker_process(const Launch& launch, int rank, bool cloned) noexcept {
  const int worker_id = rank - 1;
  WorkerRecord& record = launch.record_of_rank(rank);
  record.pid.store(getpid(), std::memory_order_release);  // first: found even if our starter dies now
  if (cloned) notify_caller(launch.events, false);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != launch.caller) _exit(1);  // the caller died before PR_SET_PDEATHSIG took effect
  if (!cloned) discard_inherited_output();  // clones come from workers that already did
  start_children(launch, rank);
  if (!wait_for_go(launch, record)) _exit(0);

  backend::WorkerControl& control = launch.block.control;
  record.phase.store(kHooks, std::memory_order_release);
  try {
    // The child has a single thread, so binding it binds the process (threads it starts inherit the
    // cpuset) at the cost of one sched_setaffinity.
    if (!launch.binding.bind_this_thread(worker_id)) {
      throw std::runtime_error("pasha::ProcessContext: the OS refused to bind worker " + std::to_string(worker_id) +
                               " to cpuset " + launch.binding.cpuset(worker_id) +
                               " (use pasha::Binding::none to run unbound)");
    }
    populate_slices(launch.regions, worker_id, launch.tree.num_workers());
    PhasedJob job(launch.job, record.phase);
    backend::run_worker(launch.context, job, worker_id, control);
    flush_worker_output();
    record.state.store(kDone, std::memory_order_release);
  } catch (...) {
    record.error.record_current_exception();
    flush_worker_output();
    record.state.store(kFailed, std::memory_order_release);
    control.cancelled.store(true, std::memory_order_relaxed);
  }
  record.phase.store(kFinished, std::memory_order_release);
  notify_caller(launch.events, true);
  wait_for_exit_release(launch);
  _exit(0);
}

// The caller's side of one map: forks its share of the tree, adopts the workers others start
// (pidfd, then go), watches them all until each has finished, stops the rest after a failure.
class Supervisor {
 public:
  explicit Supervisor(const Launch& launch)
      : launch_(launch), num_workers_(launch.tree.num_workers()), children_(static_cast<std::size_t>(num_workers_)) {}

  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // If the map ends by an exception of the caller's own: no worker is left behind.
  ~Supervisor() {
    if (!settled_) abandon();
  }

  // Forks the caller's ranks, adopting the workers they announce between forks.
  void start() {
    for (int rank : launch_.tree.children(0)) {
      const pid_t pid = fork();
      if (pid == 0) worker_process(launch_, rank, false);
      if (pid < 0) {
        launch_.mark_not_started(rank, errno);
        continue;
      }
      adopt(rank - 1, pid);
      adopt_announced();
    }
  }

  // Watches the workers until every one has finished. Returns the lowest failed worker id, if any.
  std::optional<int> supervise() {
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
      if (poll(fds.data(), fds.size(), timeout_ms(unwatched)) < 0 && errno != EINTR) {
        throw std::system_error(errno, std::generic_category(), "pasha::ProcessContext: poll");
      }
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

  // After a successful map: the workers not yet reaped, to reap later.
  std::vector<ProcessContext::Exiting> release_exiting() {
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

  // After a failed map: reaps every worker (all have finished, they are exiting), then throws the
  // failure of `worker_id`.
  [[noreturn]] void reap_all_and_throw(int worker_id) {
    settled_ = true;
    for (Child& child : children_) wait_reaped(child);
    children_[static_cast<std::size_t>(worker_id)].failure->throw_worker_error(worker_id);
  }

 private:
  struct Child {
    ProcessContext::Exiting process;
    bool adopted = false;      // the caller watches it and has let it go
    bool maybe_exited = true;  // its pidfd was readable (or it has none) since the last look
    bool reaped = false;
    bool collected_elsewhere = false;
    int status = 0;
    bool killed_by_pasha = false;
    bool finished = false;  // done, failed, never started, or dead
    std::optional<backend::ErrorRecord> failure;
    std::optional<Clock::time_point> announce_deadline;
  };

  WorkerRecord& record(int w) const noexcept { return launch_.block.record(w); }

  // Takes worker w (pid `pid`, a child of ours that cannot have exited yet: it waits for our go) under
  // watch and lets it go.
  void adopt(int w, pid_t pid) {
    watch(children_[static_cast<std::size_t>(w)], pid);
    record(w).go.store(kGo, std::memory_order_release);
    futex_wake_all(record(w).go, FutexScope::shared);
  }

  // Takes child `pid` under watch (a pidfd, when the kernel gives one).
  static void watch(Child& child, pid_t pid) noexcept {
    child.process.pid = pid;
    child.process.pidfd = open_pidfd(pid);
    child.adopted = true;
  }

  // Adopts the workers that other workers started and announced.
  void adopt_announced() {
    for (int w = 0; w < num_workers_; ++w) {
      const Child& child = children_[static_cast<std::size_t>(w)];
      if (child.adopted || child.finished) continue;
      if (const pid_t pid = record(w).pid.load(std::memory_order_acquire); pid > 0) adopt(w, pid);
    }
  }

  void drain_events() noexcept { drain_eventfd(launch_.events.fd); }

  // Brings every child's state up to date; returns how many have not finished.
  int update() {
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
    }
    if (cancelled_at_) kill_overdue(now);
    return unfinished;
  }

  void check_exit(Child& child) noexcept {
    child.maybe_exited = false;
    bool elsewhere = false;
    const std::optional<int> status = reap(child.process, false, elsewhere);
    if (!status) return;
    child.reaped = true;
    close_quietly(child.process.pidfd);
    child.status = *status;
    child.collected_elsewhere = elsewhere;
  }

  void check_finished(int w, Child& child, Clock::time_point now) {
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

  // A worker nobody has announced: fine while its starter runs; once the starter has died, it gets
  // kAnnounceGrace to announce itself, then counts as never started.
  void check_unannounced(int w, Child& child, Clock::time_point now) {
    const int starter = launch_.tree.starter(w + 1);
    if (starter == 0 || !children_[static_cast<std::size_t>(starter - 1)].reaped) return;
    if (!child.announce_deadline) child.announce_deadline = now + kAnnounceGrace;
    if (now >= *child.announce_deadline) child.finished = true;
  }

  void fail(Child& child, const backend::ErrorRecord& failure) {
    child.finished = true;
    child.failure = failure;
    first_failure_ = true;
  }

  backend::ErrorRecord death_of(const Child& child) const {
    backend::ErrorRecord failure;
    const std::string who = "worker process " + std::to_string(child.process.pid);
    if (child.collected_elsewhere) {
      failure.record("exit", who + " ended before finishing its share; its exit status was collected by someone "
                                   "else (is SIGCHLD ignored?)");
    } else if (WIFSIGNALED(child.status)) {
      failure.record("signal", who + " was killed by signal " + signal_name(WTERMSIG(child.status)));
    } else {
      failure.record("exit", who + " exited with status " + std::to_string(WEXITSTATUS(child.status)) +
                                 " before finishing its share");
    }
    return failure;
  }

  void release_exits() noexcept {
    if (launch_.block.exits_released.exchange(1, std::memory_order_acq_rel) == 0) {
      futex_wake_all(launch_.block.exits_released, FutexScope::shared);
    }
  }

  // After a failure: workers still in their kernels after kKernelGrace, or in their hooks after
  // kHookGrace, are killed.
  void kill_overdue(Clock::time_point now) noexcept {
    for (int w = 0; w < num_workers_; ++w) {
      Child& child = children_[static_cast<std::size_t>(w)];
      if (!child.adopted || child.reaped || child.finished || child.killed_by_pasha) continue;
      const std::uint32_t phase = record(w).phase.load(std::memory_order_acquire);
      const bool overdue = (phase == kKernel && now >= *cancelled_at_ + kKernelGrace) ||
                           (phase == kHooks && now >= *cancelled_at_ + kHookGrace);
      if (overdue) kill_child(child);
    }
  }

  void kill_child(Child& child) noexcept {
    child.killed_by_pasha = true;
    if (child.process.pidfd >= 0 && send_signal_to_pidfd(child.process.pidfd, SIGKILL) == 0) return;
    kill(child.process.pid, SIGKILL);  // not reaped yet, so the pid is still this child's
  }

  // The poll timeout: until the next kill or announce deadline, or kPollWithoutPidfdMs when a child
  // has no pidfd; otherwise until an event.
  int timeout_ms(bool unwatched) const {
    std::optional<Clock::time_point> next;
    const auto consider = [&](Clock::time_point t) { next = next ? std::min(*next, t) : t; };
    if (cancelled_at_) {
      consider(*cancelled_at_ + kKernelGrace);
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

  void wait_reaped(Child& child) noexcept {
    if (!child.adopted || child.reaped) return;
    bool elsewhere = false;
    reap(child.process, true, elsewhere);
    child.reaped = true;
    close_quietly(child.process.pidfd);
  }

  // The caller gave up on the map (an exception of its own): every worker, started or about to be,
  // leaves; none is left behind.
  void abandon() noexcept {
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
      bool waiting = false;
      for (int w = 0; w < num_workers_; ++w) {
        const Child& child = children_[static_cast<std::size_t>(w)];
        const int starter = launch_.tree.starter(w + 1);
        const bool starter_running = starter > 0 && !children_[static_cast<std::size_t>(starter - 1)].reaped;
        if (!child.adopted && record(w).state.load() == kRunning && starter_running) waiting = true;
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

  const Launch& launch_;
  const int num_workers_;
  std::vector<Child> children_;
  bool first_failure_ = false;
  std::optional<Clock::time_point> cancelled_at_;
  bool settled_ = false;
};

}  // namespace

ProcessContext::ProcessContext() : ProcessContext(default_num_workers()) {}

ProcessContext::ProcessContext(int num_workers, Binding binding, ForkMode fork_mode)
    : BoundContext(num_workers, binding), fork_mode_(fork_mode), mappings_(std::make_shared<SharedMappings>()) {
  make_process_state();
}

ProcessContext::~ProcessContext() {
  wait_for_exited_workers();
  close_quietly(events_);
}

void ProcessContext::make_process_state() {
  control_memory_ = map_shared(ControlBlock::bytes_for(num_workers()));
  control_ = new (control_memory_.get()) ControlBlock;
  for (int w = 0; w < num_workers(); ++w) new (&control_->record(w)) WorkerRecord;
  events_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (events_ < 0) {
    throw std::system_error(errno, std::generic_category(), "pasha::ProcessContext: eventfd");
  }
}

void ProcessContext::rebuild_after_fork() {
  // The exiting workers, the control block and the eventfd are the parent's: let them go here and
  // make our own. (The pidfds are this process's copies; closing them does not touch the parent.)
  for (Exiting& child : exiting_) close_quietly(child.pidfd);
  exiting_.clear();
  close_quietly(events_);
  make_process_state();
}

void ProcessContext::wait_for_exited_workers() {
  for (Exiting& child : exiting_) {
    bool elsewhere = false;
    reap(child, true, elsewhere);
    close_quietly(child.pidfd);
  }
  exiting_.clear();
}

std::shared_ptr<void> ProcessContext::allocate(std::size_t bytes) { return mappings_->allocate(bytes); }

void ProcessContext::launch(backend::Job& job) {
  wait_for_exited_workers();
  const int num_active = job.num_active_workers();
  if (num_active == 0) return;

  ControlBlock& block = *control_;
  block.control.reset();
  block.exits_released.store(0, std::memory_order_relaxed);
  const std::uint32_t generation = block.generation.fetch_add(1, std::memory_order_acq_rel) + 1;
  for (int w = 0; w < num_active; ++w) block.record(w).reset();
  drain_eventfd(events_);

  struct stat identity {};
  fstat(events_, &identity);
  const Launch launch{
      .context = *this,
      .job = job,
      .block = block,
      .binding = plan_,
      .tree = ForkTree(num_active, fork_mode_ == ForkMode::tree && fork_tree_available()),
      .regions = job.num_elements() >= kPopulateMinElements ? mappings_->snapshot(kPopulateMinBytes)
                                                            : std::vector<SharedMappings::Region>(),
      .events = {.fd = events_, .device = identity.st_dev, .inode = identity.st_ino},
      .generation = generation,
  };
  flush_caller_output();
  Supervisor supervisor(launch);
  supervisor.start();
  if (const std::optional<int> failed = supervisor.supervise()) supervisor.reap_all_and_throw(*failed);
  exiting_ = supervisor.release_exiting();
}

}  // namespace pasha
