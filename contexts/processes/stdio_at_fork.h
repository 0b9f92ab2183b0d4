// Standard output around the forks of a process map: what the caller buffered is printed once (by
// the caller, never again by a worker), and what workers print is not lost. Internal to
// contexts/processes.
#ifndef PASHA_CONTEXTS_PROCESSES_STDIO_AT_FORK_H_
#define PASHA_CONTEXTS_PROCESSES_STDIO_AT_FORK_H_

namespace pasha::processes {

// In the caller, before forking: what is pending in stdout and stderr goes out now, so that workers'
// output follows it. A stream another thread holds is skipped (the worker discards its copy anyway).
// So are the C++ standard streams that keep buffers of their own (after sync_with_stdio(false)).
void flush_caller_output() noexcept;

// In a worker: output the caller buffered is the caller's to print.
void discard_inherited_output() noexcept;

// In a worker, when its share is over: its own output goes out.
void flush_worker_output() noexcept;

}  // namespace pasha::processes

#endif  // PASHA_CONTEXTS_PROCESSES_STDIO_AT_FORK_H_
