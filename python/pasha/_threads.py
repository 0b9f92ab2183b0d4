"""Threads that a kernel starts count as its worker (internal to pasha).

pasha's engine sees every thread a C or C++ library starts (pthread_create), but not the threads
Python's ``threading`` starts from this extension's point of view. So ``threading.Thread.start`` tells
the new thread who started it: a thread started by a kernel (or a worker hook, or a map's pre_map or
post_map hook) works as that kernel's worker while the kernel's share runs, and a map it calls runs
inline with that worker id (``concurrent.futures`` pools started inside a kernel included). Any other
thread's map waits its turn. Threads started with ``_thread.start_new_thread`` directly are not seen.
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
