"""How pasha raises in the caller what a worker raised (internal to pasha).

A worker's exception reaches the caller as the same exception: the object itself from a thread
(serial and thread contexts), or, from a worker process, rebuilt from its pickle (or from its type
and arguments): ``capture`` makes that description in the worker, the engine carries it as the
payload of its one failure record (pasha::ErrorWithPayload, backend::ErrorRecord), and ``rebuild``
raises it in the caller. Either way it carries the
worker's id (``exc.worker_id``) and the worker's traceback (``exc.worker_traceback``, also added as
a note). Failures that are not Python exceptions (a worker process killed by a signal, or one that
exited) and exceptions that cannot be rebuilt become :class:`WorkerError`.
"""

from __future__ import annotations

import importlib
import pickle
import sys
import traceback
from typing import Any, Optional

__all__ = ['WorkerError']


class WorkerError(RuntimeError):
    """A worker failed, and its failure cannot be raised as the exception it was.

    Raised when a worker process died (killed by a signal, or exited: the message says how) or
    when its exception could not be rebuilt in the caller.

    Attributes:
        worker_id (int): The worker that failed.
        type_name (str): The type of the worker's exception as the worker named it
            (``module.QualName``), ``'signal'`` or ``'exit'`` for a process that died, or ``''``.
    """

    def __init__(self, message: str, worker_id: Optional[int] = None, type_name: str = ''):
        super().__init__(message)
        self.worker_id = worker_id
        self.type_name = type_name


def _type_name(exc_type: type) -> str:
    return f'{exc_type.__module__}.{exc_type.__qualname__}'


def capture(exc: BaseException, max_bytes: int, tb: Any = None) -> bytes:
    """In a worker process: what the caller needs to raise `exc` (raised with traceback `tb`)
    again, its chain (``__cause__``, ``__context__``) included, at most `max_bytes`."""
    if tb is not None:
        exc.with_traceback(tb)
    info = _describe(exc, _MAX_CHAIN, max_bytes)
    info['traceback'] = ''.join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    data = pickle.dumps(info)
    while len(data) > max_bytes:
        if not _shrink(info):
            return b''  # nothing left to cut: the caller rebuilds from the engine's type name and message
        data = pickle.dumps(info)
    return data


# How many links of an exception's chain (causes and contexts) travel from a worker process.
_MAX_CHAIN = 8


def _describe(exc: BaseException, links: int, max_bytes: int = 1 << 20) -> dict:
    """`exc` as the caller rebuilds it: its type, message, pickles where they can be made (each at
    most `max_bytes`), and the exceptions it was raised from (``__cause__``) or while handling
    (``__context__``; described once when it is the cause, as after ``raise ... from``)."""
    exc_type = type(exc)
    info: dict = {'module': exc_type.__module__, 'qualname': exc_type.__qualname__, 'message': _message(exc),
                  'suppress_context': exc.__suppress_context__}
    for key, value in (('args', exc.args), ('state', getattr(exc, '__dict__', {})), ('exception', exc)):
        try:
            data = pickle.dumps(value)
        except BaseException:  # not picklable: the caller makes do with less
            continue
        if len(data) <= max_bytes:
            info[key] = data
    if links > 0:
        if exc.__cause__ is not None and exc.__cause__ is not exc:
            info['cause'] = _describe(exc.__cause__, links - 1, max_bytes)
        if exc.__context__ is not None and exc.__context__ is not exc:
            if exc.__context__ is exc.__cause__ and 'cause' in info:
                info['context_is_cause'] = True
            else:
                info['context'] = _describe(exc.__context__, links - 1, max_bytes)
    return info


def _shrink(info: dict) -> bool:
    """Makes `info` smaller: the chain first, then pickles, then texts; False when nothing is left to
    cut."""
    for key in ('context', 'cause'):
        if key in info:
            if key == 'cause':
                info.pop('context_is_cause', None)
            del info[key]
            return True
    for key in ('exception', 'state', 'args'):
        if key in info:
            del info[key]
            return True
    if len(info['traceback']) > 1000:
        info['traceback'] = '...\n' + info['traceback'][-len(info['traceback']) // 2:]
        return True
    if len(info['message']) > 1000:
        info['message'] = info['message'][:len(info['message']) // 2] + ' ...'
        return True
    if info['traceback']:
        info['traceback'] = ''
        return True
    return False


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except BaseException:
        return f'<{type(exc).__name__} whose str() failed>'


def attach(exc: BaseException, worker_id: int, where: str, worker_traceback: Optional[str] = None,
           tb: Any = None) -> None:
    """Marks `exc` as raised by worker `worker_id` of a `where` context: the worker's traceback is
    `worker_traceback` (text, from a worker process), or `tb` (the traceback object the exception
    was raised with in a thread of this process, which it keeps)."""
    try:
        if tb is not None:
            exc.with_traceback(tb)
        if worker_traceback is None:
            worker_traceback = ''.join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:  # an exception that refuses its traceback, or whose formatting fails
        worker_traceback = worker_traceback or ''
    for name, value in (('worker_id', worker_id), ('worker_traceback', worker_traceback)):
        try:
            setattr(exc, name, value)
        except Exception:  # a type that takes no attributes
            pass
    note = f'pasha: raised by worker {worker_id} of a {where} context'
    if worker_traceback and exc.__traceback__ is None:
        note += ', where:\n' + worker_traceback.rstrip()
    try:
        if note not in getattr(exc, '__notes__', ()):
            exc.add_note(note)
    except Exception:  # a type that takes no notes (frozen dataclasses, say)
        pass


def _exception_type(module: str, qualname: str) -> Optional[type]:
    try:
        found = sys.modules.get(module) or importlib.import_module(module)
        for part in qualname.split('.'):
            found = getattr(found, part)
    except Exception:
        return None
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def rebuild(payload: Optional[bytes], worker_id: int, where: str, type_name: str, message: str,
            summary: str) -> BaseException:
    """In the caller: the exception worker `worker_id` raised, from what it recorded (`payload`),
    or else a WorkerError from what the engine knows (`type_name`, `message`, `summary`)."""
    if payload:
        try:
            info = pickle.loads(payload)
        except Exception:
            info = None
        if info is not None:
            exc = _from_info(info)
            if exc is None:
                name = f"{info['module']}.{info['qualname']}"
                exc = WorkerError(f'pasha: worker {worker_id} failed: {name}: {info["message"]}',
                                  worker_id, name)
            attach(exc, worker_id, where, info.get('traceback', ''))
            return exc
    exc = WorkerError(summary or f'pasha: worker {worker_id} failed: {message}', worker_id, type_name)
    attach(exc, worker_id, where, '')
    return exc


def _from_info(info: dict) -> Optional[BaseException]:
    exc = _exception_of(info)
    if exc is None:
        return None
    if info.get('context_is_cause') and 'cause' in info:
        info = dict(info, context=info['cause'])
    rebuilt: dict = {}
    for key, attribute in (('cause', '__cause__'), ('context', '__context__')):
        if key in info:
            linked = rebuilt.get(id(info[key])) or _from_info(info[key])
            if linked is None:
                name = f"{info[key]['module']}.{info[key]['qualname']}"
                linked = WorkerError(f'{name}: {info[key]["message"]}', None, name)
            rebuilt[id(info[key])] = linked
            try:
                setattr(exc, attribute, linked)
            except Exception:
                pass
    exc.__suppress_context__ = info.get('suppress_context', exc.__suppress_context__)
    return exc


def _exception_of(info: dict) -> Optional[BaseException]:
    if 'exception' in info:
        try:
            exc = pickle.loads(info['exception'])
            if isinstance(exc, BaseException):
                return exc
        except Exception:
            pass
    exc_type = _exception_type(info['module'], info['qualname'])
    if exc_type is None:
        return None
    try:
        args = tuple(pickle.loads(info['args'])) if 'args' in info else (info['message'],)
        state = pickle.loads(info['state']) if 'state' in info else {}
    except Exception:
        args, state = (info['message'],), {}
    try:
        # As unpickling would, but without calling __init__ (whose signature need not take `args`).
        exc = exc_type.__new__(exc_type, *args)
        exc.args = args
        if state:
            exc.__dict__.update(state)
        return exc
    except Exception:
        return None
