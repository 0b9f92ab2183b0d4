"""Map contexts: where a map's kernels run, and where the arrays they write into live.

EXtra-pasha's contexts on pasha's C++ engine. :class:`MapContext` is the base class (usable
directly for allocation, and by users for contexts of their own); :class:`SerialContext`,
:class:`ThreadContext` and :class:`ProcessContext` run on the engine:

- ``SerialContext``: the calling thread.
- ``ThreadContext``: a persistent pool of threads pinned to cores (hwloc); each worker holds the GIL
  while it runs Python, as Python threads do (numpy releases it in its loops).
- ``ProcessContext``: worker processes forked for each map (in a tree of forks), writing into
  arrays from ``alloc`` that live in memory shared with the caller (``MAP_SHARED``): nothing is
  copied back.

A kernel's exception is raised in the caller as the same exception (with ``worker_id`` and
``worker_traceback`` attached); a worker process that dies gives :class:`pasha.WorkerError` naming
how. Ctrl-C during a map stops the workers and raises ``KeyboardInterrupt``. Maps may be called
from several threads at once: maps on one context run one after the other.
"""

from __future__ import annotations

import numbers
import sys
import threading
import warnings
from typing import Any, Callable, Iterable, Optional, Sequence, Tuple, Union

import numpy as np

from . import _pasha, compiled
from .functor import Functor

__all__ = ['MapContext', 'HeapContext', 'SerialContext', 'ThreadContext', 'ProcessContext', 'PoolContext']

ShapeLike = Union[int, Iterable[int]]


def _checked_shape(given: Any) -> Tuple[int, ...]:
    """`given` (an integer or a sequence of them) as a shape; TypeError or ValueError naming it."""
    not_a_shape = TypeError(f'array shape must be an integer or a sequence of integers, not {given!r}')
    if isinstance(given, (bool, np.bool_, str, bytes)):
        raise not_a_shape
    if isinstance(given, numbers.Integral):
        shape = (int(given),)
    else:
        try:
            shape = tuple(given)
        except TypeError:
            raise not_a_shape from None
    for extent in shape:
        if isinstance(extent, (bool, np.bool_)) or not isinstance(extent, numbers.Integral):
            raise not_a_shape
        if extent < 0:
            raise ValueError(f'negative dimensions are not allowed: shape {given!r}')
    return tuple(int(e) for e in shape)


def _checked_order(order: Any) -> str:
    if order not in ('C', 'F'):
        raise ValueError(f"order must be 'C' or 'F', not {order!r}")
    return order


def _deprecated(name: str, instead: str) -> None:
    warnings.warn(f'pasha: {name}() is replaced by {instead}() (or alloc()) and will go in a future version',
                  DeprecationWarning, stacklevel=3)


class _RunWorker:
    """``MapContext.run_worker``: the inner loop of a worker, for contexts written in Python.

    Called on the class, ``MapContext.run_worker(function, functor, share, worker_id)`` runs the
    loop alone (EXtra-pasha's static method); called on a context, it also runs the kernel's
    ``pre_worker`` and ``post_worker`` hooks (pasha.util.MapHook), as the hook API's does.
    """

    def __get__(self, instance: Optional['MapContext'], owner: type) -> Callable[..., None]:
        if instance is None:
            return _iterate_share
        return lambda function, functor, share, worker_id: _run_worker_with_hooks(
            instance, function, functor, share, worker_id)


def _iterate_share(function: Callable, functor: Functor, share: Any, worker_id: int) -> None:
    for entry in functor.iterate(share):
        function(worker_id, *entry)


def _run_worker_with_hooks(context: 'MapContext', function: Callable, functor: Functor, share: Any,
                           worker_id: int) -> None:
    # A context written in Python runs its workers itself: the hooks in pasha's one order (pasha.util),
    # each post_worker only when the share succeeded.
    hooks = list(getattr(function, '_pasha_hooks_', ()))
    for hook in hooks:
        function = hook.pre_worker(context, function, worker_id)
    _iterate_share(function, functor, share, worker_id)
    for hook in reversed(hooks):
        function = hook.post_worker(context, function, worker_id)


def _flush_callers_output() -> None:
    """What the caller printed before a map goes out before its workers' output. Not from a daemon
    thread: one the exiting interpreter ends while it holds a stream's lock would leave that lock to
    the interpreter's own last flush (a fatal error)."""
    if threading.current_thread().daemon:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a stream's own trouble: the map runs all the same
            pass


class MapContext:
    """Context to execute map operations: where kernels run and how memory reaches them.

    The base class allocates on the heap and does not map (``map`` raises NotImplementedError); a
    context of your own derives from it, implements ``map`` (``run_worker`` is its inner loop) and,
    if its workers need other memory, ``_alloc``.
    """

    def __init__(self, num_workers: int):
        self.num_workers = num_workers

    # --- Allocation -------------------------------------------------------------------------

    @staticmethod
    def _resolve_alloc(shape: Optional[ShapeLike], dtype: Any, order: Optional[str],
                       like: Any) -> Tuple[Tuple[int, ...], np.dtype, str]:
        """The shape, dtype and order of an allocation, filling what was left out from `like`
        (shape, dtype, and order: C if it is C-contiguous, else F if F-contiguous, else C) or from
        the defaults (float64, 'C')."""
        if like is not None:
            shape = shape if shape is not None else like.shape
            dtype = dtype if dtype is not None else like.dtype
            if order is None:
                try:
                    # C first: a 1-d array is both.
                    order = 'C' if like.flags.c_contiguous else 'F' if like.flags.f_contiguous else 'C'
                except AttributeError:
                    order = 'C'
        elif shape is None:
            raise ValueError('array shape must be specified')
        else:
            dtype = dtype if dtype is not None else np.float64
            order = order if order is not None else 'C'
        return _checked_shape(shape), np.dtype(dtype), _checked_order(order)

    def _alloc(self, shape: Tuple[int, ...], dtype: Any, order: str, fill: Any) -> np.ndarray:
        """Low-level allocation: an array of exactly `shape` (the worker axis already in it), filled
        with `fill` unless it is None. The base class allocates on the heap."""
        if fill is None:
            return np.empty(shape, dtype, order)
        return np.full(shape, fill, dtype, order)

    def alloc(self, shape: Optional[ShapeLike] = None, dtype: Any = None, order: Optional[str] = None,
              fill: Any = None, like: Any = None, *, per_worker: bool = False) -> np.ndarray:
        """Allocate an array that every worker of this context can read and write.

        Only `shape` is needed, unless `like` gives it: an array-like whose shape, dtype and memory
        order are taken for what is left out. dtype defaults to float64, order to 'C'. Without `fill`
        the contents are uninitialised (as np.empty); `fill` may be a scalar or an array-like
        broadcast to the shape. `per_worker` adds an axis of length ``num_workers`` (first for 'C',
        last for 'F'), for reductions where each worker has its own accumulator.

        Raises:
            ValueError: no shape, a negative extent, an order other than 'C' or 'F'.
            TypeError: a shape that is not integers, a dtype numpy does not know.
        """
        shape, dtype, order = self._resolve_alloc(shape, dtype, order, like)
        if per_worker:
            shape = tuple(_pasha.with_worker_axis(shape, order, self.num_workers))
        return self._alloc(shape, dtype, order, fill)

    def alloc_per_worker(self, shape: Optional[ShapeLike] = None, dtype: Any = None, order: Optional[str] = None,
                         fill: Any = None, like: Any = None) -> np.ndarray:
        """``alloc(..., per_worker=True)``: one array per worker along an added first ('C') or last
        ('F') axis."""
        return self.alloc(shape, dtype, order, fill, like, per_worker=True)

    # numpy's creation functions, as EXtra-pasha's contexts offered them (its numpy_array_api).
    def empty(self, shape: ShapeLike, dtype: Any = np.float64, order: str = 'C') -> np.ndarray:
        """An uninitialised array, as np.empty."""
        return self.alloc(shape, dtype, order)

    def zeros(self, shape: ShapeLike, dtype: Any = np.float64, order: str = 'C') -> np.ndarray:
        """An array of zeros, as np.zeros."""
        return self.alloc(shape, dtype, order, fill=0)

    def ones(self, shape: ShapeLike, dtype: Any = np.float64, order: str = 'C') -> np.ndarray:
        """An array of ones, as np.ones."""
        return self.alloc(shape, dtype, order, fill=1)

    def full(self, shape: ShapeLike, fill_value: Any, dtype: Any = np.float64, order: str = 'C') -> np.ndarray:
        """An array of `fill_value` (float64 unless `dtype` says otherwise), as np.full."""
        return self.alloc(shape, dtype, order, fill=fill_value)

    def _like(self, prototype: Any, dtype: Any, order: str, shape: Optional[ShapeLike], fill: Any) -> np.ndarray:
        order = order.upper() if isinstance(order, str) else order
        if order in ('K', 'A'):
            order = 'F' if prototype.flags.f_contiguous else 'C'
        elif order not in ('C', 'F'):
            raise ValueError(f'invalid memory order {order!r}')
        return self.alloc(prototype.shape if shape is None else shape,
                          prototype.dtype if dtype is None else dtype, order, fill)

    def empty_like(self, prototype: Any, dtype: Any = None, order: str = 'K',
                   shape: Optional[ShapeLike] = None) -> np.ndarray:
        """An uninitialised array like `prototype` (shape, dtype and, for order 'K', its order)."""
        return self._like(prototype, dtype, order, shape, None)

    def zeros_like(self, prototype: Any, dtype: Any = None, order: str = 'K',
                   shape: Optional[ShapeLike] = None) -> np.ndarray:
        return self._like(prototype, dtype, order, shape, 0)

    def ones_like(self, prototype: Any, dtype: Any = None, order: str = 'K',
                  shape: Optional[ShapeLike] = None) -> np.ndarray:
        return self._like(prototype, dtype, order, shape, 1)

    def full_like(self, prototype: Any, fill_value: Any, dtype: Any = None, order: str = 'K',
                  shape: Optional[ShapeLike] = None) -> np.ndarray:
        return self._like(prototype, dtype, order, shape, fill_value)

    def _per_worker(self, shape: ShapeLike, dtype: Any, order: str, fill: Any) -> np.ndarray:
        # The worker axis first, in either order, as EXtra-pasha's *_per_worker functions put it.
        shape = _checked_shape(shape)
        if order == 'C':
            return self.alloc(shape, dtype, order, fill, per_worker=True)
        return self.alloc((self.num_workers,) + shape, dtype, order, fill)

    def empty_per_worker(self, shape: ShapeLike, dtype: Any = np.float64, order: str = 'C') -> np.ndarray:
        """An uninitialised array per worker, along a first axis of length num_workers."""
        return self._per_worker(shape, dtype, order, None)

    def zeros_per_worker(self, shape: ShapeLike, dtype: Any = np.float64, order: str = 'C') -> np.ndarray:
        return self._per_worker(shape, dtype, order, 0)

    def ones_per_worker(self, shape: ShapeLike, dtype: Any = np.float64, order: str = 'C') -> np.ndarray:
        return self._per_worker(shape, dtype, order, 1)

    def full_per_worker(self, shape: ShapeLike, fill_value: Any, dtype: Any = np.float64,
                        order: str = 'C') -> np.ndarray:
        return self._per_worker(shape, dtype, order, fill_value)

    # The oldest names (EXtra-pasha's first README: outp = psh.array(100)): arrays of zeros.
    def array(self, shape: ShapeLike, dtype: Any = np.float64) -> np.ndarray:
        """Deprecated: zeros(shape, dtype)."""
        _deprecated('array', 'zeros')
        return self.zeros(shape, dtype)

    def array_like(self, other: Any) -> np.ndarray:
        """Deprecated: zeros_like(other)."""
        _deprecated('array_like', 'zeros_like')
        return self.zeros_like(other)

    def array_per_worker(self, shape: ShapeLike, dtype: Any = np.float64) -> np.ndarray:
        """Deprecated: zeros_per_worker(shape, dtype)."""
        _deprecated('array_per_worker', 'zeros_per_worker')
        return self.zeros_per_worker(shape, dtype)

    # --- Mapping ----------------------------------------------------------------------------

    def map(self, function: Callable[..., Any], functor: Any) -> None:
        """Apply `function` to every element of `functor` (a Functor, or anything Functor.try_wrap
        wraps): ``function(worker_id, index, value, ...)``."""
        raise NotImplementedError('map')

    run_worker = _RunWorker()


class HeapContext(MapContext):
    """A context whose arrays live on the heap of the caller's process (EXtra-pasha's base of the
    serial and thread contexts): for contexts of your own whose workers are threads."""


class _EngineContext(MapContext):
    """A context that runs on pasha's C++ engine (internal base of the built-in contexts)."""

    _workers_are_processes = False

    def __init__(self, engine: Any):
        super().__init__(num_workers=engine.num_workers)
        self._engine = engine

    def __repr__(self) -> str:
        return f'<{type(self).__name__} with {self.num_workers} worker{"s" if self.num_workers != 1 else ""}>'

    def alloc(self, shape: Optional[ShapeLike] = None, dtype: Any = None, order: Optional[str] = None,
              fill: Any = None, like: Any = None, *, per_worker: bool = False) -> np.ndarray:
        shape, dtype, order = self._resolve_alloc(shape, dtype, order, like)
        if dtype.hasobject:
            if self._workers_are_processes:
                raise ValueError(f'arrays of Python objects (dtype {dtype}) cannot be shared with worker '
                                 f'processes: use a numeric dtype, or a serial or thread context')
            full = tuple(_pasha.with_worker_axis(shape, order, self.num_workers)) if per_worker else shape
            return MapContext._alloc(self, full, dtype, order, fill)
        return self._engine.alloc(list(shape), dtype, order, per_worker, fill)

    def _alloc(self, shape: Tuple[int, ...], dtype: Any, order: str, fill: Any) -> np.ndarray:
        return self.alloc(shape, dtype, order, fill)

    def map(self, function: Callable[..., Any], functor: Any, *arrays: np.ndarray, schedule: str = 'static',
            chunk: int = 0, progress: bool = False) -> None:
        """Apply `function` to every element of `functor`: ``function(worker_id, index, value, ...)``
        for each element, spread over this context's workers, returning once all are done.

        `functor` is a Functor or anything Functor.try_wrap wraps (sequences, numpy arrays along
        their first axis, xarray DataArrays, pasha.xfel's and EXtra-data's collections, objects
        with ``_pasha_functor_``). Hooks attached to `function` (pasha.util) run around it.

        A numba-compiled `function` (``numba.njit``) runs natively in the workers, without the GIL,
        and gets `arrays` (the arrays it writes or reads: numba copies global arrays) after its
        value: ``function(worker_id, index, value, *arrays)`` (pasha.compiled).

        `schedule='dynamic'` hands out chunks of `chunk` elements (0: about 16 per worker) to free
        workers, for kernels whose cost varies (sequences, arrays and XFEL data). `progress=True` reports
        progress on stderr.

        Raises:
            The exception a kernel (or hook) raised, with ``worker_id`` and ``worker_traceback``.
            pasha.WorkerError: a worker process died (signal, exit) or its exception could not be
                rebuilt.
            KeyboardInterrupt: Ctrl-C during the map (the workers are stopped first).
            ValueError, TypeError: bad arguments, naming them.
        """
        functor = Functor.try_wrap(functor)
        if compiled.is_compiled_kernel(function):
            function = compiled.prepare(function, functor, arrays)
        elif arrays:
            raise TypeError(f'pasha: arrays after the collection are for compiled kernels (numba.njit); '
                            f'{getattr(function, "__name__", function)!r} is a Python kernel, which reaches '
                            f'arrays as any Python function does')
        _flush_callers_output()
        self._engine.map(function, functor, context=self, schedule=schedule, chunk=chunk, progress=bool(progress),
                         writes=self._writes())

    def _writes(self) -> Optional[list]:
        return None


class SerialContext(_EngineContext):
    """Serial map context: the map runs in the calling thread, without parallelism (for debugging).
    Arguments are accepted and ignored, as EXtra-pasha's were."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(_pasha.serial())


class PoolContext(_EngineContext):
    """Base of the thread and process contexts (EXtra-pasha's name for contexts with a pool of
    workers). The default worker count is one per physical core this process may run on (its
    cpuset, as taskset, cgroups and Slurm set it), not EXtra-pasha's ``min(cpu_count() // 2, 10)``:
    see pasha's README.

    Not EXtra-pasha's pool machinery: there is no ``map(function, functor, pool_cls)``,
    ``init_worker`` or ``id_queue`` to build on. A context of your own derives from
    :class:`MapContext` and runs each share with ``run_worker``."""


class ThreadContext(PoolContext):
    """Map context using a pool of threads, pinned to cores with hwloc (`binding`: 'compact',
    'spread' or 'none'). The pool is made on the first map and kept until the context goes.

    `first_touch`: who first touches the pages of a new array of 4 MiB or more. 'numa' (the default):
    the workers, each the part a static map gives it, so that pages land on its NUMA node, when the
    workers sit on more than one node; on one node, the kernels' first writes, as for numpy arrays.
    'always': the workers, on any machine (when there are several, and bound: not with
    binding='none'). 'never': the kernels' first writes."""

    def __init__(self, num_workers: Optional[int] = None, *, binding: str = 'compact', first_touch: str = 'numa'):
        super().__init__(_pasha.threads(num_workers, binding, first_touch))


class ProcessContext(PoolContext):
    """Map context using worker processes forked for each map (in a tree of forks), writing into
    memory from ``alloc`` that they share with the caller (anonymous ``MAP_SHARED`` mappings).

    As with any fork: what a kernel writes anywhere else (globals, other arrays) stays in the worker,
    and threads, locks and open files of the caller are not the worker's to use.
    """

    _workers_are_processes = True

    def __init__(self, num_workers: Optional[int] = None, *, binding: str = 'compact', fork_tree: bool = True):
        super().__init__(_pasha.processes(num_workers, binding, bool(fork_tree)))

    def wait_for_exited_workers(self) -> None:
        """Waits for a map another thread runs on this context to end (a map returns once its
        workers have exited and were reaped): afterwards the context has no child process. Call it
        before a ``os.waitpid(-1, ...)`` of your own while other threads may map."""
        self._engine.wait_for_exited_workers()

