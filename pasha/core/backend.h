// pasha's backend contract: everything a context author needs, in this one header (it includes the
// base class, pasha/core/context.h, and the types a context receives, pasha/core/job.h). pasha's own
// contexts (serial, threads, processes, MPI) are built on it alone, as a third party builds theirs;
// the conformance suite (conformance/conformance.h) checks the result.
//
// A context is a class derived from pasha::Context that implements
//
//   std::shared_ptr<void> allocate(std::size_t bytes)
//       `bytes` of memory that every worker of the context and the caller can reach, aligned to
//       Context::kAlignment, released when the last copy of the returned pointer goes; contents
//       unspecified. Throws pasha::AllocationError (a std::bad_alloc naming the size) when the memory
//       cannot be had. May be called from inside a kernel (this_worker_id() >= 0) and from several
//       threads at once.
//
//   void launch(pasha::backend::Job& job)
//       Runs workers 0 .. job.num_active_workers() - 1, each once, through backend::run_worker with
//       one WorkerControl they all share, and returns when every one has finished. When workers fail
//       it throws pasha::WorkerError for the lowest failed worker id, once all have stopped (use
//       WorkerFailures or ErrorRecord below). While it waits for its workers it calls
//       job.check_caller() now and then (at least every 100 ms); when that throws (the caller was
//       interrupted), it stops its workers as after a failure and lets the exception through once
//       they have stopped.
//
// and may override rebuild_after_fork() (see Context), allocate_array(layout) (for a context that
// needs an array's shape, not only its size; the default calls allocate), and allocates_zeros(bytes)
// (true when its memory always reads as zeros when fresh: a fill of zeros is then not written). What
// Context promises a context in return:
//  - launch is never called concurrently on one context: maps are serialised by one lock, held from
//    the first pre_map hook to the last post_map hook. allocate is not under that lock; a context that
//    needs its workers inside allocate takes it with Context::exclusively (or try_exclusively).
//  - launch is not called for a map started from inside a kernel: that map runs inline on the
//    calling worker, with the calling worker's id.
//  - the map hooks (pre_map, post_map) are Context's business; the worker hooks are run_worker's.
//
// Worker processes: a context whose workers are processes forks them through fork_between_handlers
// (so that an embedding, such as a Python interpreter, hears of every fork) and calls
// enter_worker_process in each, before any user code runs there.
//
// A context whose workers span several address spaces that share no WorkerControl (the ranks of an
// MPI job) runs each part of a map with Job::restrict_to_part and learns which elements a part
// visits from Job::indices_of_part (pasha/core/job.h); contexts/mpi/ is the example.
//
// Also here: ForkSafe mutexes (pasha/core/fork_safe_mutex.h), for state a worker process may touch
// after fork, and the fork handlers an embedding registers (pasha/core/fork_handlers.h).
#ifndef PASHA_CORE_BACKEND_H_
#define PASHA_CORE_BACKEND_H_

#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "pasha/core/context.h"
#include "pasha/core/detail/worker_identity.h"
#include "pasha/core/errors.h"
#include "pasha/core/fork_handlers.h"
#include "pasha/core/fork_safe_mutex.h"
#include "pasha/core/job.h"

namespace pasha::backend {

// Runs worker `worker_id`'s part of `job` as a worker of `context`: marks the thread as that worker
// (this_worker_id()), calls each of the context's pre_worker hooks, the job, and then post_worker of
// every hook whose pre_worker ran, in reverse order, whatever failed. Throws the first failure (a
// hook's or the kernel's exception); a later one is dropped. The one way a context runs a worker.
void run_worker(Context& context, Job& job, int worker_id, WorkerControl& control);

// Runs `job` on the workers of `context`, as one of its maps would (under its lock) but without its
// map hooks: for contexts built on other contexts. job.num_active_workers() must not exceed
// context.num_workers(). Throws what context's launch throws.
void launch(Context& context, Job& job);

// Memory for an array of `layout` from `context` (its allocate_array): memory `context`'s workers
// can reach, for contexts built on other contexts.
std::shared_ptr<void> allocate(Context& context, const ArrayLayout& layout);

// In a worker process (a process forked to run worker `worker_id`'s share and nothing else), before
// any user code runs there: from now on every thread of this process counts as that worker. A map
// called from any of them (a thread a kernel started, say) runs inline, as a map from inside a kernel
// does, this_worker_id() is `worker_id` in threads that have no id of their own, and no context
// takes this process for a user's forked child (which would rebuild state the running map uses).
void enter_worker_process(int worker_id) noexcept;

// Threads count as the worker of the kernel that started them (Context::map): pasha learns of every
// pthread_create. An embedding that starts threads some other way (its own thread primitive), or whose
// calls to pthread_create pasha does not see (a library loaded apart, as a Python extension is), calls
// birth_of_new_thread in the starting thread and begin_thread(birth) first thing in the new one.
using detail::begin_thread;
using detail::birth_of_new_thread;
using detail::ThreadBirth;

// This process's id, as getpid() says, without a system call (cached, and renewed in every process
// forked with fork() or through fork_between_handlers).
pid_t this_process_id() noexcept;

// Runs `fork` (a callable returning pid_t: fork(), or a clone) between the fork handlers registered
// with add_fork_handlers: before it, and after it in the parent (also when it failed) or in the
// child. Returns what `fork` returned, with its errno. Every fork a context makes goes through it.
template <class Fork>
pid_t fork_between_handlers(Fork&& fork) {
  detail::run_fork_handlers_before();
  const pid_t pid = std::forward<Fork>(fork)();
  const int error = errno;
  if (pid == 0) {
    detail::note_new_process();
    detail::run_fork_handlers_in_child();
  } else {
    detail::run_fork_handlers_in_parent();
  }
  errno = error;
  return pid;
}

// The failures of one map whose workers share the caller's address space (threads, or the caller
// itself): records each worker's exception and reports the lowest failed worker id with the original
// exception nested in the WorkerError.
//
// Thread-safety: each worker id is used by one thread at a time; rethrow_lowest after all finished.
class WorkerFailures {
 public:
  explicit WorkerFailures(int num_workers) : errors_(static_cast<std::size_t>(num_workers)) {}

  // run_worker(context, job, worker_id, control); on failure records the exception and sets
  // control.cancelled, so that the other workers stop early. Throws only the forced unwinding of a
  // thread being ended (pthread_exit), which it lets through.
  void run(Context& context, Job& job, int worker_id, WorkerControl& control);

  // Records `error` as worker `worker_id`'s failure and sets control.cancelled; for failures a
  // context detects itself (a worker that could not be set up).
  void record(int worker_id, std::exception_ptr error, WorkerControl& control) noexcept;

  // Throws WorkerError for the lowest failed worker, if any failed.
  void rethrow_lowest() const;

 private:
  std::vector<std::exception_ptr> errors_;
};

// What is known of a worker's failure when the worker is another process: the exception's type name,
// message and, for a pasha::ErrorWithPayload, its payload, in a fixed-size, trivially copyable record
// that can live in shared memory or travel as bytes (an exception object cannot cross a process
// boundary). The one channel for a worker process's failure, in every context and embedding.
struct ErrorRecord {
  static constexpr std::size_t kTypeNameSize = 256;
  static constexpr std::size_t kMessageSize = 4096 - kTypeNameSize;
  static constexpr std::size_t kPayloadSize = (std::size_t{64} << 10) - 4096 - sizeof(std::uint32_t);

  char type_name[kTypeNameSize];
  char message[kMessageSize];
  std::uint32_t payload_size;
  char payload[kPayloadSize];

  // Records the exception being handled: its demangled type name and what() ("unknown exception ..."
  // for types not derived from std::exception), or an ErrorWithPayload's own type name, message and
  // payload. Call inside a catch block. Never throws; texts too long for the record are cut and end in
  // "...", a payload too long is dropped (an embedding then rebuilds from the type name and message).
  void record_current_exception() noexcept;
  // Records a failure that is not an exception: type "signal" or "exit" for a process that died, say.
  void record(std::string_view type_name, std::string_view message, std::string_view payload = {}) noexcept;

  std::string_view type_name_text() const noexcept;
  std::string_view message_text() const noexcept;
  std::string_view payload_bytes() const noexcept;

  // Throws WorkerError for `worker_id` with a pasha::RemoteError (this type name, message and
  // payload) nested.
  [[noreturn]] void throw_worker_error(int worker_id) const;
};
static_assert(std::is_trivially_copyable_v<ErrorRecord> && sizeof(ErrorRecord) == (std::size_t{64} << 10));

// `bytes` of heap memory aligned to `alignment` (a power of two), freed when the last copy of the
// pointer goes: the memory of contexts whose workers share the caller's address space. Arrays of 1 MiB
// and more are private mappings of their own: given back to the system when they go, starting on a
// 2 MiB boundary, with transparent huge pages asked for (madvise) from 2 MiB on, and reading as zeros
// until written. Throws pasha::AllocationError naming the size when the memory cannot be had (also
// under AddressSanitizer).
std::shared_ptr<void> allocate_heap(std::size_t bytes, std::size_t alignment);
// Whether allocate_heap(bytes, alignment) gives memory that reads as zeros (a mapping of its own).
bool heap_reads_as_zeros(std::size_t bytes, std::size_t alignment) noexcept;

}  // namespace pasha::backend

#endif  // PASHA_CORE_BACKEND_H_
