// The caller's side of one process map: it forks its share of the fork tree, adopts the workers
// other workers start (a pidfd first, then their go), watches them all until each has finished,
// stops the rest after a failure, and never leaves a worker behind. Internal to contexts/processes.
#ifndef PASHA_CONTEXTS_PROCESSES_SUPERVISOR_H_
#define PASHA_CONTEXTS_PROCESSES_SUPERVISOR_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "contexts/processes/launch.h"

namespace pasha::processes {

using Clock = std::chrono::steady_clock;

// Reaps `child` if it has ended (or, with `block`, once it has). Returns the wait status, or nullopt
// while it runs; sets `collected_elsewhere` when someone else reaped it (SIGCHLD ignored, a foreign
// waitpid(-1)).
std::optional<int> reap(const Exiting& child, bool block, bool& collected_elsewhere) noexcept;

class Supervisor {
 public:
  explicit Supervisor(const Launch& launch)
      : launch_(launch), num_workers_(launch.tree.num_workers()), children_(static_cast<std::size_t>(num_workers_)) {}

  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // If the map ends by an exception of the caller's own: no worker is left behind.
  ~Supervisor();

  // Forks the caller's ranks, adopting the workers they announce between forks.
  void start();

  // Watches the workers until every one has finished. Returns the lowest failed worker id, if any.
  std::optional<int> supervise();

  // After a successful map: the workers not yet reaped, to reap later.
  std::vector<ProcessContext::Exiting> release_exiting();

  // After a failed map: reaps every worker (all have finished, they are exiting), then throws the
  // failure of `worker_id`.
  [[noreturn]] void reap_all_and_throw(int worker_id);

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
    std::unique_ptr<backend::ErrorRecord> failure;  // on the heap: records are 64 KiB, failures rare
    std::optional<Clock::time_point> announce_deadline;
    std::optional<std::uint64_t> cpu_ticks_at_cancel;  // its CPU time when the map was cancelled
  };

  WorkerRecord& record(int w) const noexcept { return launch_.block.record(w); }

  // Takes worker w (pid `pid`, a child of ours that cannot have exited yet: it waits for our go) under
  // watch and lets it go.
  void adopt(int w, pid_t pid);

  // Takes child `pid` under watch (a pidfd, when the kernel gives one).
  static void watch(Child& child, pid_t pid) noexcept;

  // Adopts the workers that other workers started and announced.
  void adopt_announced();

  void drain_events() noexcept { drain_eventfd(launch_.events.fd); }

  // Brings every child's state up to date; returns how many have not finished.
  int update();

  void check_exit(Child& child) noexcept;

  void check_finished(int w, Child& child, Clock::time_point now);

  // A worker nobody has announced: fine while its starter runs; once the starter has died, it gets
  // kAnnounceGrace to announce itself, then counts as never started.
  void check_unannounced(int w, Child& child, Clock::time_point now);

  void fail(Child& child, const backend::ErrorRecord& failure);

  backend::ErrorRecord death_of(const Child& child) const;

  void release_exits() noexcept;

  // After a failure: workers still in their kernels after kKernelGrace, or in their hooks after
  // kHookGrace, are killed. A worker in its kernel that wants the CPU but has had less than
  // kKernelGrace of it since the cancel (more workers than cores, a loaded machine) is starved, not
  // stuck: it gets its grace in CPU time (within kHookGrace).
  void kill_overdue(Clock::time_point now) noexcept;

  void kill_child(Child& child) noexcept;

  // The poll timeout: until the next kill or announce deadline, or kPollWithoutPidfdMs when a child
  // has no pidfd; otherwise until an event.
  int timeout_ms(bool unwatched) const;

  void wait_reaped(Child& child) noexcept;

  // The caller gave up on the map (an exception of its own): every worker, started or about to be,
  // leaves; none is left behind.
  void abandon() noexcept;

  const Launch& launch_;
  const int num_workers_;
  std::vector<Child> children_;
  bool first_failure_ = false;
  std::optional<Clock::time_point> cancelled_at_;
  bool settled_ = false;
};

}  // namespace pasha::processes

#endif  // PASHA_CONTEXTS_PROCESSES_SUPERVISOR_H_
