"""Compiled kernels: a numba-compiled kernel that pasha's C++ workers call directly, without the GIL.

    import numba
    import numpy as np
    import pasha as psh

    @numba.njit
    def triple(worker_id, index, value, out):     # a Python kernel's signature, plus the arrays it writes
        out[index] = 3 * value

    inp = np.random.rand(10**7)
    out = psh.alloc(like=inp)
    psh.map(triple, inp, out)                      # the arrays come after the collection

numba compiles a function's global arrays into it as constants (a copy): a compiled kernel gets the
arrays it reads or writes as arguments, after its value, in the order given to map. They are numpy
arrays of numbers, C- or F-contiguous; pasha's arrays (alloc, alloc_per_worker) for results that the
caller must see from worker processes, as for Python kernels.

What a kernel is called with, by collection:
- a numpy array (along its first axis, or NdarrayFunctor/DataArrayFunctor's axis), a list, tuple or
  range of numbers: ``kernel(worker_id, index, value, *arrays)``, value being the element (a number, or
  an array for the rows of a 2-d array);
- a key of a European XFEL run (pasha.xfel's, or EXtra-data's that pasha's reader opens):
  ``kernel(worker_id, index, train_id, data, *arrays)``, data being the train's rows, always with the
  count first (a count of 0 when the train has none: numba has no None).

For each element range (or train) it takes, a worker calls the kernel compiled by numba for these
argument types, as one native call: no Python call per element, and no GIL, in any context. numba
compiles one such entry per kernel and argument types, the first time, in the caller (a fraction of
a second); maps over other data of the same types reuse it.

A kernel that raises stops the map as a Python kernel's exception does, and the exception is raised in
the caller as itself: pasha runs the failing element once more through numba's Python entry to have
the exception with its type and message (so that element runs twice). Hooks (pasha.util) are for Python
kernels: a compiled kernel takes none. Ctrl-C stops the workers within 1/512 of a share (or a train).
"""

from __future__ import annotations

import sys
import textwrap
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from . import _pasha
from .functor import ExtraDataFunctor, NdarrayFunctor, SequenceFunctor, XfelFunctor

__all__ = ['is_compiled_kernel']


def is_compiled_kernel(function: Any) -> bool:
    """Whether `function` is a numba-compiled function (``numba.njit``), which pasha maps natively."""
    numba = sys.modules.get('numba')
    if numba is None:
        return False
    return isinstance(function, numba.core.registry.CPUDispatcher)


# The compiled entries of a kernel, by argument types, kept on the kernel (numba's dispatcher) itself:
# they hold the kernel, and go with it.
_ENTRIES = '_pasha_entries_'

# The most arrays a compiled kernel takes (numba compiles calls of up to 30 arguments).
MAX_ARRAYS = 26


def _check_dtype(name: str, dtype: np.dtype) -> None:
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in 'biufc' or dtype.char == 'e':
        raise TypeError(f'pasha: the arrays of a compiled kernel hold numbers numba knows (bool, integers, '
                        f'float32/64, complex); {name} has dtype {dtype}')
    if not dtype.isnative:
        raise TypeError(f'pasha: numba takes arrays in this machine\'s byte order; {name} has dtype {dtype} '
                        f'(.astype(dtype.newbyteorder(\'=\')) makes a copy that is)')


def _array_argument(name: str, array: Any) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise TypeError(f'pasha: the arrays of a compiled kernel are numpy arrays; {name} is '
                        f'{type(array).__name__}')
    _check_dtype(name, array.dtype)
    if not (array.flags.c_contiguous or array.flags.f_contiguous):
        raise TypeError(f'pasha: the arrays of a compiled kernel are C- or F-contiguous; {name} is not '
                        f'(np.ascontiguousarray makes a copy that is)')
    return array


def _layout(array: np.ndarray) -> str:
    return 'C' if array.flags.c_contiguous else 'F'


class _Entry:
    """What the generated entry needs: the table of pointers and shapes, in the order it reads them."""

    def __init__(self) -> None:
        self.pointers: List[int] = []
        self.shapes: List[int] = []
        self.lines: List[str] = []
        self.names: Dict[str, Any] = {}

    def add_array(self, variable: str, array: np.ndarray, first_dim_at_call: bool = False) -> tuple:
        """Reads `array` as `variable` in the entry (read-only where `array` is); returns its part of the
        cache key."""
        slot = len(self.pointers)
        self.pointers.append(array.ctypes.data if array.size else 0)
        offset = len(self.shapes)
        self.shapes.extend(int(n) for n in array.shape)
        dims = ', '.join(f'shapes[{offset + k}]' for k in range(array.ndim)) + (',' if array.ndim == 1 else '')
        dtype_name = f'dtype_{slot}'
        self.names[dtype_name] = numba_type(array.dtype)
        reader = 'carray' if _layout(array) == 'C' else 'farray'
        read = f'{reader}(pointers[{slot}], ({dims}), {dtype_name})'
        if not array.flags.writeable:
            self.names['read_only'] = _read_only_intrinsic()
            read = f'read_only({read})'
        self.lines.append(f'{variable} = {read}')
        return (array.dtype.str, array.ndim, _layout(array), bool(array.flags.writeable), first_dim_at_call)


def numba_type(dtype: np.dtype) -> Any:
    from numba import from_dtype
    return from_dtype(dtype)


_read_only = None


def _read_only_intrinsic() -> Any:
    """read_only(array): the same array, typed read-only for numba (as numba types a read-only numpy
    array: a write to it does not compile)."""
    global _read_only
    if _read_only is None:
        from numba.core.extending import intrinsic
        from numba.core.imputils import impl_ret_borrowed

        @intrinsic
        def read_only(typingctx, array):
            result = array.copy(readonly=True)

            def codegen(context, builder, signature, args):
                return impl_ret_borrowed(context, builder, result, args[0])

            return result(array), codegen

        _read_only = read_only
    return _read_only


def _compile(kernel: Any, source: str, names: Dict[str, Any]) -> Any:
    from numba import carray, cfunc, farray, types
    namespace = {'carray': carray, 'farray': farray, 'kernel': kernel, 'np': np, **names}
    exec(compile(source, f'<pasha entry of {getattr(kernel, "__name__", "kernel")}>', 'exec'), namespace)
    signature = types.int64(types.int64, types.int64, types.int64, types.CPointer(types.voidptr),
                            types.CPointer(types.int64))
    return cfunc(signature, nopython=True)(namespace['entry'])


def _element_data(functor: Any) -> Tuple[np.ndarray, int]:
    """The array whose elements (along the returned axis) a compiled kernel is given."""
    sequence = functor.sequence
    if hasattr(sequence, 'values') and not isinstance(sequence, np.ndarray):  # an xarray DataArray
        sequence = sequence.values
    data = np.asarray(sequence)
    if data.ndim == 0 or data.dtype.hasobject or data.dtype.kind not in 'biufc':
        raise TypeError(f'pasha: a compiled kernel maps over numbers (numpy arrays, sequences of numbers, '
                        f'XFEL keys); this collection gives {type(functor.sequence).__name__} of dtype {data.dtype}')
    _check_dtype('the collection', data.dtype)
    if data.flags.c_contiguous or data.flags.f_contiguous:
        return data, 0
    # NdarrayFunctor(a, axis=1) and DataArrayFunctor(a, dim) of a's second dimension walk a view with that
    # axis first: index the contiguous array itself along it (its element's axes are in the same order).
    whole = np.swapaxes(data, 0, 1) if data.ndim > 1 else data
    if whole.flags.c_contiguous or whole.flags.f_contiguous:
        return whole, 1
    raise TypeError('pasha: a compiled kernel maps along the first or second axis of a C- or F-contiguous '
                    'array (np.ascontiguousarray(np.moveaxis(a, axis, 0)) makes a copy to map along its first)')


def _xfel_key(functor: Any) -> Any:
    """The C++ XFEL key a functor walks, or None when it walks no XFEL data."""
    if type(functor).iterate is XfelFunctor.iterate and isinstance(functor, XfelFunctor):
        target = functor.obj._engine
    elif isinstance(functor, ExtraDataFunctor) and type(functor).iterate is ExtraDataFunctor.iterate:
        if functor._pasha is None:
            raise TypeError('pasha: a compiled kernel reads XFEL data with pasha\'s reader, which could not open '
                            'the files of this EXtra-data collection')
        target = functor._pasha._engine
    else:
        return None
    if not isinstance(target, _pasha.XfelKey):
        raise TypeError('pasha: a compiled kernel maps over one key of an XFEL run (run[source, key]), '
                        'not a whole source or run (numba takes no dicts of arrays)')
    return target


def prepare(kernel: Any, functor: Any, arrays: Sequence[Any]) -> '_pasha.CompiledKernel':
    """The compiled kernel as pasha's workers call it, over `functor` with `arrays`."""
    if getattr(kernel, '_pasha_hooks_', None):
        raise TypeError('pasha: hooks (pasha.util) run Python around Python kernels; a compiled kernel '
                        'takes none')
    if len(arrays) > MAX_ARRAYS:
        raise TypeError(f'pasha: a compiled kernel takes at most {MAX_ARRAYS} arrays, not {len(arrays)} (numba '
                        f'compiles calls of up to 30 arguments): put some in one array')
    arrays = [_array_argument(f'array {k} after the collection', a) for k, a in enumerate(arrays)]
    entry = _Entry()
    key = _xfel_key(functor)
    array_names = [f'array_{k}' for k in range(len(arrays))]
    call_arrays = ''.join(f', {name}' for name in array_names)
    if key is not None:
        entry_shape = tuple(key.entry_shape)
        rows = np.empty((0,) + entry_shape, dtype=key.dtype)  # the rows' type; each train's are set per call
        entry.shapes.append(0)  # shapes[0]: the train id, and pointers[0], shapes[1]: its rows, set per call
        cache_key: tuple = ('xfel', entry.add_array('data', rows, first_dim_at_call=True))
        body = f'''
            train_id = np.uint64(shapes[0])
            try:
                kernel(worker_id, begin, train_id, data{call_arrays})
            except Exception:
                return begin
            return -1'''
        size = len(key)

        def explain(worker_id: int, index: int) -> None:
            train_id, data = key.train(index, keep_dims=True)
            if data is None:
                data = rows
            kernel(worker_id, index, train_id, data, *arrays)
    else:
        if not isinstance(functor, SequenceFunctor) or type(functor).iterate is not SequenceFunctor.iterate:
            raise TypeError(f'pasha: a compiled kernel maps over numpy arrays, sequences of numbers and XFEL '
                            f'keys, not {type(functor).__name__}')
        sequence = functor.sequence
        if isinstance(sequence, range):
            # A range's values are computed, not read: value = start + index * step (shapes[0], [1]).
            entry.pointers.append(0)
            entry.shapes.extend([sequence.start, sequence.step])
            cache_key = ('range',)
            body = f'''
                start = shapes[0]
                step = shapes[1]
                index = begin
                try:
                    while index < end:
                        kernel(worker_id, index, start + index * step{call_arrays})
                        index += 1
                except Exception:
                    return index
                return -1'''
            size = len(sequence)

            def explain(worker_id: int, index: int) -> None:
                kernel(worker_id, index, sequence[index], *arrays)
        else:
            data, axis = _element_data(functor)
            cache_key = ('elements', axis, entry.add_array('data', data))
            element = ', '.join([':'] * axis + ['index'])
            body = f'''
                index = begin
                try:
                    while index < end:
                        kernel(worker_id, index, data[{element}]{call_arrays})
                        index += 1
                except Exception:
                    return index
                return -1'''
            size = data.shape[axis]
            selector = (slice(None),) * axis

            def explain(worker_id: int, index: int) -> None:
                kernel(worker_id, index, data[selector + (index,)], *arrays)
    cache_key += tuple(entry.add_array(name, array) for name, array in zip(array_names, arrays))
    known = getattr(kernel, _ENTRIES, None)
    if known is None:
        known = {}
        setattr(kernel, _ENTRIES, known)
    compiled = known.get(cache_key)
    if compiled is None:
        source = 'def entry(worker_id, begin, end, pointers, shapes):\n' + ''.join(
            f'    {line}\n' for line in entry.lines) + textwrap.indent(textwrap.dedent(body).strip('\n'), '    ') + '\n'
        compiled = known[cache_key] = _compile(kernel, source, entry.names)

    def explain_failure(worker_id: int, index: int) -> None:
        explain(worker_id, index)
        raise RuntimeError(f'pasha: the compiled kernel {getattr(kernel, "__name__", kernel)!r} raised at index '
                           f'{index}, but not when run again through numba to get its exception')

    # The arrays stay alive (and their addresses valid) as long as the CompiledKernel: it holds them.
    return _pasha.CompiledKernel(compiled.address, size, entry.pointers, entry.shapes, key,
                                 explain_failure, [compiled, functor, explain, *arrays])
