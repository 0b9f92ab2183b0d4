"""Map hooks and the helpers built on them (EXtra-pasha's hook API).

A :class:`MapHook` is attached to a kernel by calling it on the kernel (as a decorator) and then
runs around every map of that kernel, in every context:

- ``pre_map(context, function)``: in the caller, before the workers start;
- ``pre_worker(context, function, worker_id)``: in each worker, before its first element;
- ``post_worker(context, function, worker_id)``: in each worker, after its last element;
- ``post_map(context, function)``: in the caller, once every worker has finished.

Each stage returns the function to go on with (the one it was given, or a replacement: the helpers
below replace it by a copy whose global names they changed), and each call is given what the call
before it returned. Several hooks run in pasha's one order, the C++ engine's (pasha/core/hooks.h):
``pre_map`` and ``pre_worker`` in the order the hooks were attached, ``post_worker`` and ``post_map``
last-attached first, like nested scopes. A post stage runs only when what it follows succeeded: a
hook's ``post_worker`` unless that worker's kernel or one of its hooks raised (a share cut short
because another worker failed still gets it, so that ``with_finalize`` cleans up), ``post_map`` when
the map did.
"""

from __future__ import annotations

from copy import copy, deepcopy
from inspect import isgeneratorfunction
from types import FunctionType
from typing import Any, Callable, Dict, Optional

import numpy as np

__all__ = ['MapHook', 'with_init', 'with_finalize', 'with_local_copies', 'with_reduction']


class MapHook:
    """Decorator to hook into the map process (see the module's documentation)."""

    def __call__(self, function: Callable) -> Callable:
        try:
            hooks = function._pasha_hooks_
        except AttributeError:
            hooks = []
            function._pasha_hooks_ = hooks
        hooks.append(self)
        return function

    def _override_function_object(self, function: Callable, code=None, globals_=None, name=None,
                                  argdefs=None, closure=None) -> Callable:
        """A copy of `function` with some of its properties replaced."""
        new_function = FunctionType(code=code or function.__code__,
                                    globals=globals_ or function.__globals__,
                                    name=name or function.__name__,
                                    argdefs=argdefs or function.__defaults__,
                                    closure=closure or function.__closure__)
        new_function.__kwdefaults__ = function.__kwdefaults__
        new_function._pasha_hooks_ = function._pasha_hooks_
        return new_function

    def _inject_function_globals(self, function: Callable, globals_: Dict[str, Any]) -> Callable:
        """A copy of `function` whose global scope also has (or has instead) `globals_`."""
        return self._override_function_object(function, globals_=dict(function.__globals__, **globals_))

    def pre_map(self, context: Any, function: Callable) -> Callable:
        """Hook before the map operation starts."""
        return function

    def pre_worker(self, context: Any, function: Callable, worker_id: int) -> Callable:
        """Hook before a worker starts iterating."""
        return function

    def post_worker(self, context: Any, function: Callable, worker_id: int) -> Callable:
        """Hook after a worker has iterated over its share."""
        return function

    def post_map(self, context: Any, function: Callable) -> Callable:
        """Hook after the map operation ends."""
        return function


class with_init(MapHook):
    """Runs ``init_func(worker_id)`` in each worker before its first element.

    If `init_func` is a generator function, it runs until its first ``yield`` and its local
    variables become global names of the kernel in that worker (an open file, a device handle).
    """

    def __init__(self, init_func: Callable):
        self.init_func = init_func

    def pre_worker(self, context: Any, function: Callable, worker_id: int) -> Callable:
        if isgeneratorfunction(self.init_func):
            init_gen = self.init_func(worker_id)
            next(init_gen)
            function = self._inject_function_globals(function, init_gen.gi_frame.f_locals.copy())
        else:
            self.init_func(worker_id)
        return function


class with_finalize(MapHook):
    """Runs ``del_func(worker_id, globals)`` in each worker after its last element, `globals` being
    the kernel's global names as that worker saw them."""

    def __init__(self, del_func: Callable):
        self.del_func = del_func

    def post_worker(self, context: Any, function: Callable, worker_id: int) -> Callable:
        self.del_func(worker_id, function.__globals__)
        return function


class with_local_copies(MapHook):
    """Gives each worker its own copy (`deep`: deep copy) of the kernel's global names `symbols`,
    made just before its first element (a cache, a buffer)."""

    def __init__(self, *symbols: str, deep: bool = False):
        self.symbols = symbols
        self.deep = deep

    def pre_worker(self, context: Any, function: Callable, worker_id: int) -> Callable:
        local_copies = {}
        for symbol in self.symbols:
            try:
                value = function.__globals__[symbol]
            except KeyError:
                pass
            else:
                local_copies[symbol] = deepcopy(value) if self.deep else copy(value)
        return self._inject_function_globals(function, local_copies)


class with_reduction(MapHook):
    """A parallel reduction into the kernel's global arrays `symbols`.

    Each worker works on its own copy of each array (starting as the array is), found under the
    same global name; after the map, ``function(copies, out=array, **kwargs)`` combines the copies
    into the array (by default their sum over the worker axis: ``np.sum(..., axis=0)``). As in
    EXtra-pasha the array's own value is in every copy, so start sums from zeros.

    Raises (in map):
        ValueError: a symbol is not a global name of the kernel.
        TypeError: a symbol is not an array.
    """

    def __init__(self, *symbols: str, function: Callable = np.sum, kwargs: Optional[dict] = None):
        self.symbols = symbols
        self.reduce_function = function
        self.reduce_kwargs = dict(axis=0) if kwargs is None else kwargs
        self.per_worker_arrays: Dict[str, np.ndarray] = {}
        self.result_scope: Optional[dict] = None

    def pre_map(self, context: Any, function: Callable) -> Callable:
        self.per_worker_arrays = {}
        self.result_scope = function.__globals__
        for symbol in self.symbols:
            try:
                value = function.__globals__[symbol]
                value.shape
                value.dtype
            except KeyError:
                raise ValueError(f'reduction symbol {symbol} not found in function\'s global scope') from None
            except AttributeError:
                raise TypeError(f'reduction symbol {symbol} must be ArrayLike') from None
            # The worker axis first, whatever the array's order: copy w is per_worker_array[w].
            per_worker_array = context.alloc(like=value, order='C', per_worker=True)
            per_worker_array[:] = value
            self.per_worker_arrays[symbol] = per_worker_array
        return function

    def pre_worker(self, context: Any, function: Callable, worker_id: int) -> Callable:
        return self._inject_function_globals(function, {
            symbol: per_worker_array[worker_id] for symbol, per_worker_array in self.per_worker_arrays.items()})

    def post_map(self, context: Any, function: Callable) -> Callable:
        for symbol in self.symbols:
            self.reduce_function(self.per_worker_arrays[symbol], out=self.result_scope[symbol],
                                 **self.reduce_kwargs)
        self.per_worker_arrays.clear()
        self.result_scope = None
        return function
