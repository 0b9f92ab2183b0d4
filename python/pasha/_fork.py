"""What a worker process of pasha's needs first, right after its fork (internal to pasha).

A fork copies the caller's ``sys.stdout`` and ``sys.stderr`` as they were: with what other threads of
the caller had written but not yet flushed, and with the stream's lock held if another thread was in
the middle of a write. A worker that printed through them would print the caller's text again, or
wait for good for a lock no thread of the worker holds. So each worker gets streams of its own over
the same file descriptors, line-buffered (each line reaches the file whole, in one write), and the
logging handlers that wrote to the old ones write to the new ones.

In a Jupyter kernel (ipykernel), sys.stdout and sys.stderr are ipykernel's OutStream, which in a forked
process sends each piece it is given (each argument of a print) as a message of its own, and first
takes a lock the fork may have copied held. A worker's stream there is line-buffered too, and sends
each line (or each flush) as one message of the notebook's output, through the same channel.

Other streams a program installed itself are left as they are.
"""

from __future__ import annotations

import codecs
import io
import os
import sys

# The streams the fork copied, kept alive here: freed, they would flush the caller's text (or wait for
# its lock) on their way out.
_inherited: list = []


class _ToNotebook(io.RawIOBase):
    """Writes to a Jupyter kernel's output: each write, one ipykernel 'stream' message (text that
    ipykernel's OutStream `stream` would have sent), without OutStream's buffer and its lock."""

    def __init__(self, stream):
        super().__init__()
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder('utf-8')('replace')

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._stream.fileno()

    def write(self, data) -> int:
        text = self._decoder.decode(bytes(data))
        if text:
            stream = self._stream
            stream.session.pid = os.getpid()  # the session refuses to send from another process
            stream.session.send(stream.pub_thread, 'stream', content={'name': stream.name, 'text': text},
                                parent=stream.parent_header, ident=stream.topic)
        return len(data)


def _is_jupyter_stream(stream) -> bool:
    return (type(stream).__module__ == 'ipykernel.iostream' and
            all(hasattr(stream, name) for name in ('session', 'pub_thread', 'parent_header', 'topic', 'name')))


def _fresh(stream):
    """A new line-buffered text stream over `stream`'s file descriptor (or Jupyter kernel's output),
    or None to keep `stream`."""
    if _is_jupyter_stream(stream):
        # A buffer of 1 MiB, as below: a line up to that long is one message.
        return io.TextIOWrapper(io.BufferedWriter(_ToNotebook(stream), buffer_size=1 << 20), encoding='utf-8',
                                errors='backslashreplace', line_buffering=True)
    # (The buffer is a FileIO itself when Python runs unbuffered: -u, PYTHONUNBUFFERED.)
    if type(stream) is not io.TextIOWrapper or type(stream.buffer) not in (io.BufferedWriter, io.FileIO):
        return None
    try:
        fd = stream.fileno()
        raw = io.FileIO(fd, 'w', closefd=False)
        # A buffer of 1 MiB: a line up to that long reaches the file in one write (a pipe keeps writes
        # of up to 4 KiB whole against other writers).
        return io.TextIOWrapper(io.BufferedWriter(raw, buffer_size=1 << 20), encoding=stream.encoding,
                                errors=stream.errors, line_buffering=True)
    except (OSError, ValueError):
        return None


def after_fork_in_worker() -> None:
    """Gives this worker process streams of its own (see the module's documentation)."""
    replaced = {}
    for name in ('stdout', 'stderr'):
        old = getattr(sys, name, None)
        new = _fresh(old)
        if new is None:
            continue
        _inherited.append(old)
        replaced[id(old)] = new
        setattr(sys, name, new)
        if getattr(sys, f'__{name}__', None) is old:
            setattr(sys, f'__{name}__', new)
    logging = sys.modules.get('logging')
    if not replaced or logging is None:
        return
    loggers = [logging.getLogger()] + [logger for logger in list(logging.Logger.manager.loggerDict.values())
                                       if isinstance(logger, logging.Logger)]
    for logger in loggers:
        for handler in list(logger.handlers):
            stream = getattr(handler, 'stream', None)
            if stream is not None and id(stream) in replaced:
                handler.stream = replaced[id(stream)]
