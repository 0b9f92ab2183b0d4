"""Threads that a kernel starts count as its worker (internal to pasha).

In a C++ program pasha sees every thread started with pthread_create; in Python it does not (the
interpreter and other extensions call the C library's), so ``threading.Thread.start`` tells the new
thread who started it: a thread started by a kernel (or a worker hook, or a map's pre_map or
post_map hook) works as that kernel's worker while the kernel's share runs, and a map it calls runs
inline with that worker id (``concurrent.futures`` pools started inside a kernel included). Any other
thread's map waits its turn, among them threads of a pool made before the kernel ran, and threads that
C code (OpenMP, numba, another extension) starts: a kernel must not wait for such a thread's map on the
context running it. Threads started with ``_thread.start_new_thread`` directly are not seen either.
"""

from __future__ import annotations

import threading

from . import _pasha

_start = threading.Thread.start


def _start_as_starters_worker(self: threading.Thread) -> None:
    birth = _pasha.thread_birth()
    if birth is not None:
        run = self.run

        def run_as_starters_worker() -> None:
            _pasha.begin_thread(birth)
            run()

        self.run = run_as_starters_worker  # type: ignore[method-assign]
    _start(self)


_start_as_starters_worker.__doc__ = _start.__doc__
threading.Thread.start = _start_as_starters_worker  # type: ignore[method-assign]
