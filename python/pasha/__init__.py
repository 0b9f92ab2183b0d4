"""pasha: parallel map with zero-copy results, EXtra-pasha's API on pasha's C++ engine.

    import numpy as np
    import pasha as psh

    inp = np.random.rand(100)
    outp = psh.alloc(like=inp)              # shared with every worker, processes included

    def triple_it(worker_id, index, value):
        outp[index] = 3 * value             # written in place, by whichever worker

    psh.map(triple_it, inp)                 # the default context: worker processes
    np.testing.assert_allclose(outp, inp * 3)

Contexts decide where kernels run: ``psh.set_default_context('threads', num_workers=4)``, or a
context object used directly (``psh.ProcessContext(8).map(...)``). See pasha.context, pasha.functor
and pasha.util (hooks: with_init, with_finalize, with_local_copies, with_reduction).
"""

from __future__ import annotations

import threading
import warnings
from functools import wraps
from typing import Any, Callable, Optional, Union

try:
    import numpy as np
except ImportError as error:
    import sys as _sys
    raise ImportError(
        f'pasha needs numpy, which this Python ({_sys.executable}, {_sys.version.split()[0]}) cannot '
        f'import ({error}). Install numpy into it (pip install numpy), or use an interpreter that has '
        f'it: on Debian, /usr/bin/python3 with python3-numpy, or a venv made with '
        f'`/usr/bin/python3 -m venv --system-site-packages`.', name='numpy') from error

from . import _fork  # noqa: F401  (imported here, not in a worker right after its fork)
from . import _threads  # noqa: F401  (threads a kernel starts count as its worker)
from ._errors import WorkerError
from .context import MapContext, PoolContext, ProcessContext, SerialContext, ThreadContext
from .functor import DataArrayFunctor, ExtraDataFunctor, Functor, NdarrayFunctor, SequenceFunctor, XfelFunctor
from ._version import __version__
from .util import with_finalize, with_init, with_local_copies, with_reduction


__all__ = [
    'MapContext', 'SerialContext', 'ThreadContext', 'ProcessContext', 'MpiContext',
    'Functor', 'SequenceFunctor', 'NdarrayFunctor', 'DataArrayFunctor', 'XfelFunctor', 'ExtraDataFunctor',
    'WorkerError', 'with_init', 'with_finalize', 'with_local_copies', 'with_reduction',
    'get_default_context', 'set_default_context', 'alloc', 'alloc_per_worker', 'map',
    'empty', 'empty_like', 'empty_per_worker', 'zeros', 'zeros_like', 'zeros_per_worker',
    'ones', 'ones_like', 'ones_per_worker', 'full', 'full_like', 'full_per_worker',
    'array', 'array_like', 'array_per_worker',
]

_default_context: Optional[MapContext] = None
_default_lock = threading.Lock()

_CONTEXTS_BY_NAME = {'serial': SerialContext, 'threads': ThreadContext, 'processes': ProcessContext}


def get_default_context() -> MapContext:
    """The default map context: at first a ProcessContext with the default worker count."""
    global _default_context
    with _default_lock:
        if _default_context is None:
            _default_context = ProcessContext()
        return _default_context


def set_default_context(ctx_or_method: Union[MapContext, str], *args: Any, **kwargs: Any) -> None:
    """Set the default map context: a context object, or 'serial', 'threads' or 'processes' with
    the arguments of that context (``set_default_context('processes', num_workers=8)``).

    Raises:
        ValueError: an unknown name.
        TypeError: neither a name nor a context (an object with ``map`` and ``alloc``).
    """
    if isinstance(ctx_or_method, str):
        try:
            context_type = _CONTEXTS_BY_NAME[ctx_or_method]
        except KeyError:
            raise ValueError(f"invalid map method {ctx_or_method!r}: expected 'serial', 'threads' or "
                             f"'processes'") from None
        context = context_type(*args, **kwargs)
    elif callable(getattr(ctx_or_method, 'map', None)) and callable(getattr(ctx_or_method, 'alloc', None)):
        context = ctx_or_method
    else:
        raise TypeError(f'set_default_context takes a map context or one of '
                        f"{', '.join(repr(n) for n in _CONTEXTS_BY_NAME)}, not {ctx_or_method!r}")
    global _default_context
    with _default_lock:
        _default_context = context


@wraps(MapContext.alloc)
def alloc(*args: Any, **kwargs: Any) -> np.ndarray:
    return get_default_context().alloc(*args, **kwargs)


@wraps(MapContext.alloc_per_worker)
def alloc_per_worker(*args: Any, **kwargs: Any) -> np.ndarray:
    return get_default_context().alloc_per_worker(*args, **kwargs)


@wraps(MapContext.map)
def map(*args: Any, **kwargs: Any) -> None:
    return get_default_context().map(*args, **kwargs)


def _forward(name: str) -> Callable[..., np.ndarray]:
    method = getattr(MapContext, name)

    @wraps(method)
    def forwarded(*args: Any, **kwargs: Any) -> np.ndarray:
        return getattr(get_default_context(), name)(*args, **kwargs)

    return forwarded


empty = _forward('empty')
empty_like = _forward('empty_like')
empty_per_worker = _forward('empty_per_worker')
zeros = _forward('zeros')
zeros_like = _forward('zeros_like')
zeros_per_worker = _forward('zeros_per_worker')
ones = _forward('ones')
ones_like = _forward('ones_like')
ones_per_worker = _forward('ones_per_worker')
full = _forward('full')
full_like = _forward('full_like')
full_per_worker = _forward('full_per_worker')
array = _forward('array')
array_like = _forward('array_like')
array_per_worker = _forward('array_per_worker')


def __getattr__(name: str) -> Any:
    # MpiContext needs mpi4py, imported only when it is asked for.
    if name == 'MpiContext':
        from .mpi import MpiContext
        return MpiContext
    raise AttributeError(f"module 'pasha' has no attribute {name!r}")


del warnings
