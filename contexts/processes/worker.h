// The life of a worker process of a process map: it announces itself, starts the workers the fork
// tree gives it, waits for the caller's go, runs its share between its hooks, records the outcome and
// leaves. Internal to contexts/processes.
#ifndef PASHA_CONTEXTS_PROCESSES_WORKER_H_
#define PASHA_CONTEXTS_PROCESSES_WORKER_H_

#include "contexts/processes/launch.h"

namespace pasha::processes {

// In a new process forked (or, with `cloned`, cloned by another worker) for `rank`: runs the worker's
// life and ends the process with _exit. Never returns.
[[noreturn]] void worker_process(const Launch& launch, int rank, bool cloned) noexcept;

}  // namespace pasha::processes

#endif  // PASHA_CONTEXTS_PROCESSES_WORKER_H_
