// Fork handlers: code an embedding runs around every fork pasha's contexts make, as pthread_atfork
// does for fork() itself. pasha's process context starts its workers with fork() and, in its tree of
// forks, with clone3 (which runs no pthread_atfork handler); an embedding that must hear of every
// fork of its process registers here once. CPython is the example: the `pasha` Python package
// registers PyOS_BeforeFork, PyOS_AfterFork_Parent and PyOS_AfterFork_Child, as os.fork() calls them.
//
// Handlers run in the forking thread (before, after_in_parent) and in the new process, first thing
// (after_in_child), with no lock of pasha's held; they must not call pasha. A new worker process has
// one thread, so after_in_child may use what was locked before the fork only if before made it safe.
#ifndef PASHA_CORE_FORK_HANDLERS_H_
#define PASHA_CORE_FORK_HANDLERS_H_

namespace pasha {

struct ForkHandlers {
  void (*before)() = nullptr;           // just before the fork
  void (*after_in_parent)() = nullptr;  // just after it, in the forking process (also when it failed)
  void (*after_in_child)() = nullptr;   // in the new process, before anything else
};

// Registers handlers for every later fork a context makes. `before` handlers run in reverse order of
// registration, the others in order of registration (pthread_atfork's order). Handlers cannot be
// removed. At most kMaxForkHandlers registrations per process: beyond, throws std::length_error.
// Thread-safe; the registry is read without a lock, so that a freshly cloned process can read it.
inline constexpr int kMaxForkHandlers = 8;
void add_fork_handlers(const ForkHandlers& handlers);

namespace detail {
// The registered handlers, for backend::fork_between_handlers.
void run_fork_handlers_before() noexcept;
void run_fork_handlers_in_parent() noexcept;
void run_fork_handlers_in_child() noexcept;
}  // namespace detail

}  // namespace pasha

#endif  // PASHA_CORE_FORK_HANDLERS_H_
