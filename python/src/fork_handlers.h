// Tells the interpreter of every fork pasha's contexts make, as os.fork() does: PyOS_BeforeFork /
// PyOS_AfterFork_Parent / PyOS_AfterFork_Child around each one, the forks workers make in the fork
// tree (clone3, which runs no pthread_atfork handler) included. Registered once, with
// pasha::add_fork_handlers, when the extension module is imported. Internal to the `pasha` Python
// package.
#ifndef PASHA_PYTHON_SRC_FORK_HANDLERS_H_
#define PASHA_PYTHON_SRC_FORK_HANDLERS_H_

namespace pasha::python {

// Registers the handlers (once per process).
void register_python_fork_handlers();

}  // namespace pasha::python

#endif  // PASHA_PYTHON_SRC_FORK_HANDLERS_H_
