// What the caller and the worker processes of one process map share, and how they tell each other
// what happens: the control block in shared memory (the map's WorkerControl and one record per
// worker), the caller's eventfd, and the launch every worker process inherits. Internal to
// contexts/processes.
#ifndef PASHA_CONTEXTS_PROCESSES_LAUNCH_H_
#define PASHA_CONTEXTS_PROCESSES_LAUNCH_H_

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "contexts/common/binding.h"
#include "contexts/common/shared_memory.h"
#include "contexts/processes/fork_tree.h"
#include "contexts/processes/process_context.h"
#include "pasha/core/backend.h"

namespace pasha::processes {

// How long a worker sleeps between looks at its parent while it waits for the caller.
inline constexpr std::chrono::milliseconds kWorkerWaitSlice{100};

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

}  // namespace pasha::processes

namespace pasha {

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
    return sizeof(ControlBlock) + static_cast<std::size_t>(num_workers) * sizeof(processes::WorkerRecord);
  }
  processes::WorkerRecord& record(int worker_id) noexcept {
    return reinterpret_cast<processes::WorkerRecord*>(reinterpret_cast<char*>(this) + sizeof(ControlBlock))[worker_id];
  }
};
static_assert(sizeof(ProcessContext::ControlBlock) % alignof(processes::WorkerRecord) == 0);

// A worker process the caller forked or adopted, as the caller sees it.
struct ProcessContext::Exiting {
  pid_t pid = 0;
  int pidfd = -1;  // -1 when pidfd_open was refused: the child is then polled with waitpid
};

}  // namespace pasha

namespace pasha::processes {

using ControlBlock = ProcessContext::ControlBlock;
using Exiting = ProcessContext::Exiting;

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
void notify_caller(const Events& events, bool check) noexcept;

// Reads everything pending from a non-blocking eventfd.
void drain_eventfd(int fd) noexcept;

// Closes `fd` if it is open, and marks it closed (-1).
void close_quietly(int& fd) noexcept;

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
  void mark_not_started(int rank, int error) const noexcept;
};

}  // namespace pasha::processes

#endif  // PASHA_CONTEXTS_PROCESSES_LAUNCH_H_
