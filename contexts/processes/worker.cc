#include "contexts/processes/worker.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "contexts/common/futex.h"
#include "contexts/common/shared_memory.h"
#include "contexts/processes/stdio_at_fork.h"

namespace pasha::processes {
namespace {

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

// In a worker: starts the workers the tree gives this rank, before it runs anything of its own.
void start_children(const Launch& launch, int rank) noexcept {
  for (int child : launch.tree.children(rank)) {
    const pid_t pid = backend::fork_between_handlers(clone_sibling);
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

}  // namespace

void worker_process(const Launch& launch, int rank, bool cloned) noexcept {
  const int worker_id = rank - 1;
  WorkerRecord& record = launch.record_of_rank(rank);
  record.pid.store(getpid(), std::memory_order_release);  // first: found even if our starter dies now
  backend::enter_worker_process(worker_id);
  if (cloned) notify_caller(launch.events, false);
  // PR_SET_PDEATHSIG was set first thing in this process (fork_worker, clone_sibling).
  if (getppid() != launch.caller) _exit(1);  // the caller died before it took effect
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

}  // namespace pasha::processes
