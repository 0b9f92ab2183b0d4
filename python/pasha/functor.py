"""Functors: how a collection is split into shares for the workers and walked share by share.

EXtra-pasha's functor API. ``Functor.try_wrap(value)`` finds the functor for anything passed to
``map``: the value itself when it is a :class:`Functor`, its ``_pasha_functor_()`` when it has one,
or the one registered subclass whose ``wrap(value)`` accepts it (every subclass registers by being
defined). The built-in functors are walked by pasha's C++ engine itself (their items are read by
index there, and split as the engine splits: min(length, workers) shares of consecutive indices); any
other functor's ``split`` runs in the caller and its ``iterate`` in the worker that takes each share.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, Iterable, Iterator, List, Optional

import numpy as np

__all__ = ['Functor', 'SequenceFunctor', 'NdarrayFunctor', 'DataArrayFunctor', 'XfelFunctor',
           'ExtraDataFunctor', 'gen_split_slices']


def gen_split_slices(total_len: int, part_len: Optional[int] = None,
                     n_parts: Optional[int] = None) -> List[slice]:
    """Slices that split a sequence of `total_len` into `n_parts` pieces (or pieces of `part_len`).

    Piece ``i`` is ``slice(i * total_len // n_parts, (i + 1) * total_len // n_parts)``; pieces may be
    empty when there are more parts than elements.
    """
    if part_len is None:
        if n_parts is None:
            raise ValueError('must specify either part_len or n_parts')
    else:
        n_parts = math.ceil(total_len / part_len)
    return [slice(i * total_len // n_parts, (i + 1) * total_len // n_parts) for i in range(n_parts)]


class Functor:
    """Something that can be mapped over: split into shares, each walked by one worker.

    A subclass implements ``split(num_workers)`` (an iterable of shares, of any type) and
    ``iterate(share)`` (yielding ``(index, value, ...)`` tuples; the kernel is called as
    ``kernel(worker_id, index, value, ...)``). A subclass that implements the classmethod
    ``wrap(value)`` (returning a functor for values it accepts, else None) is found by
    :meth:`try_wrap`. A type may instead have a ``_pasha_functor_()`` method returning its functor.

    When ``split`` returns more shares than there are workers, the shares are handed out to
    whichever worker is free, as a pool would.
    """

    _functor_types: List[type] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Functor._functor_types.append(cls)

    @classmethod
    def try_wrap(cls, value: Any) -> 'Functor':
        """The functor for `value`: itself if it is one, its ``_pasha_functor_()``, or the one
        registered functor type whose ``wrap`` accepts it.

        Raises:
            ValueError: if no functor type accepts `value`, or more than one does.
        """
        if isinstance(value, cls):
            return value
        if hasattr(value, '_pasha_functor_'):
            return value._pasha_functor_()
        functor = None
        for functor_type in cls._functor_types:
            candidate = functor_type.wrap(value)
            if candidate is not None:
                if functor is not None:
                    raise ValueError(f'default functor is ambiguous for {type(value)}: '
                                     f'{type(functor).__name__} and {functor_type.__name__} both wrap it')
                functor = candidate
        if functor is None:
            raise ValueError(f'no default functor for {type(value)}')
        return functor

    @classmethod
    def wrap(cls, value: Any) -> Optional['Functor']:
        """A functor of this type for `value`, or None if this type does not wrap such values."""
        return None

    def split(self, num_workers: int) -> Iterable[Any]:
        """The shares of this functor for `num_workers` workers."""
        raise NotImplementedError('split')

    def iterate(self, share: Any) -> Iterator[tuple]:
        """Yields ``(index, value, ...)`` for each element of `share`."""
        raise NotImplementedError('iterate')


class SequenceFunctor(Functor):
    """A sequence: anything indexable by integers and slices, with a length.

    Wraps instances of ``collections.abc.Sequence`` (lists, tuples, ranges, ...). The kernel gets
    ``kernel(worker_id, index, sequence[index])``.
    """

    def __init__(self, sequence: Any):
        self.sequence = sequence

    @classmethod
    def wrap(cls, value: Any) -> Optional['SequenceFunctor']:
        if isinstance(value, Sequence):
            return cls(value)
        return None

    # EXtra-pasha's split and iterate, kept for subclasses (a user's SequenceFunctor that overrides one
    # of them is walked through both, as EXtra-pasha walks it). An unchanged SequenceFunctor is not
    # split here: pasha's engine reads its sequence by index and splits it itself.
    def split(self, num_workers: int) -> List[slice]:
        return gen_split_slices(len(self.sequence), n_parts=num_workers)

    def iterate(self, share: slice) -> Iterator[tuple]:
        yield from zip(range(*share.indices(len(self.sequence))), self.sequence[share])


class NdarrayFunctor(SequenceFunctor):
    """A numpy array, along its first axis or along `axis`: the kernel gets the sub-arrays (views)
    at each position, or the elements (numpy scalars) of a 1-d array."""

    def __init__(self, array: Any, axis: Optional[int] = None):
        self.sequence = np.swapaxes(array, 0, axis) if axis is not None else array

    @classmethod
    def wrap(cls, value: Any) -> Optional['NdarrayFunctor']:
        if isinstance(value, np.ndarray):
            return cls(value)
        return None


class DataArrayFunctor(NdarrayFunctor):
    """An xarray.DataArray, along its first dimension or along `dim`: the kernel gets DataArrays
    with the other dimensions and their coordinates."""

    def __init__(self, array: Any, dim: Optional[str] = None):
        self.sequence = array.transpose(dim, ...) if dim is not None else array

    @classmethod
    def wrap(cls, value: Any) -> Optional['DataArrayFunctor']:
        if 'xarray' not in sys.modules:
            return None  # not loaded: no value can be a DataArray
        import xarray as xr
        if isinstance(value, xr.DataArray):
            return cls(value)
        return None


class XfelFunctor(Functor):
    """pasha.xfel's DataCollection, SourceData and KeyData, train by train, read by pasha's C++ reader.

    The kernel gets ``kernel(worker_id, index, train_id, data)``: ``index`` the train's position in
    ``train_ids`` (every train is visited, empty ones too); ``data`` the train's data as EXtra-data's
    ``trains()`` gives it: for a KeyData its entries (the entry alone when there is one, None when
    there is none), for a SourceData a dict key -> entries, for a DataCollection a dict
    source -> key -> entries (keys without data left out, ``'metadata'`` in each).
    """

    def __init__(self, obj: Any):
        self.obj = obj
        self.n_trains = len(obj.train_ids)

    @classmethod
    def wrap(cls, value: Any) -> Optional['XfelFunctor']:
        if 'pasha.xfel' not in sys.modules:
            return None  # not imported: no value can be one of its collections
        from . import xfel
        if isinstance(value, (xfel.DataCollection, xfel.SourceData, xfel.KeyData)):
            return cls(value)
        return None

    def split(self, num_workers: int) -> List[slice]:
        return gen_split_slices(self.n_trains, n_parts=num_workers)

    def iterate(self, share: slice) -> Iterator[tuple]:
        engine = self.obj._engine
        for index in range(*share.indices(self.n_trains)):
            train_id, data = engine.train(index)
            yield index, train_id, data


class ExtraDataFunctor(Functor):
    """EXtra-data's DataCollection, SourceData and KeyData (when ``extra_data`` is importable), read
    by pasha's C++ reader from the same files, sources, keys and trains, and given to the kernel as
    :class:`XfelFunctor` gives pasha.xfel's: ``kernel(worker_id, index, train_id, data)``.

    A collection pasha's reader cannot open (a file format it does not know) is read through
    EXtra-data itself, as EXtra-pasha does, with a warning saying why.
    """

    def __init__(self, obj: Any):
        self.obj = obj
        self.n_trains = len(self.obj.train_ids)
        # Where the functor was made: a worker in another process reopens the files it reads.
        self._parent_pid = os.getpid()
        self._pasha: Optional[Any] = None
        from . import xfel
        try:
            self._pasha = xfel._from_extra_data(obj)
        except (xfel.FormatError, OSError, KeyError) as error:
            warnings.warn(f'pasha: reading {type(obj).__name__} through EXtra-data, as pasha\'s reader cannot: '
                          f'{error}', stacklevel=3)

    @classmethod
    def wrap(cls, value: Any) -> Optional['ExtraDataFunctor']:
        if 'extra_data' not in sys.modules:
            return None
        import extra_data as xd
        kinds = (xd.DataCollection, xd.keydata.KeyData) + (
            (xd.sourcedata.SourceData,) if hasattr(xd, 'sourcedata') else ())
        if isinstance(value, kinds):
            return cls(value)
        return None

    def split(self, num_workers: int) -> List[slice]:
        return gen_split_slices(self.n_trains, n_parts=num_workers)

    def iterate(self, share: slice) -> Iterator[tuple]:
        if self._pasha is not None:
            yield from XfelFunctor(self._pasha).iterate(share)
            return
        subobj = self.obj.select_trains(np.s_[share])
        if os.getpid() != self._parent_pid:
            # HDF5 handles inherited across fork are not to be shared: every worker process opens
            # the files anew.
            for f in subobj.files:
                f.close()
        from extra_data import KeyData
        is_key = isinstance(subobj, KeyData)
        # EXtra-data's trains() leaves trains out (a KeyData's in chunks without data, even with
        # include_empty=True): each train it yields goes to its own index, and the trains it left out
        # are visited too, without data (None for a KeyData, {} for a collection), as pasha's reader
        # visits every train.
        try:
            train_it = subobj.trains(include_empty=True) if is_key else subobj.trains()
        except TypeError:  # an EXtra-data whose KeyData.trains() takes no include_empty
            train_it = subobj.trains()
        empty = None if is_key else {}
        indices = range(*share.indices(self.n_trains))
        expected = iter(zip(indices, subobj.train_ids))
        index_of = {int(tid): index for index, tid in zip(indices, subobj.train_ids)}
        passed = indices.start - 1  # the last index visited
        for train_id, data in train_it:
            index = index_of.get(int(train_id))
            if index is None:
                raise ValueError(f'pasha: EXtra-data gave train {train_id}, which the {type(self.obj).__name__}\'s '
                                 f'train_ids do not hold')
            if index <= passed:
                raise ValueError(f'pasha: EXtra-data gave train {train_id} out of order or twice: each train must '
                                 f'reach its own index once')
            passed = index
            for skipped, skipped_id in expected:
                if skipped == index:
                    break
                yield skipped, skipped_id, empty
            yield index, train_id, data
        for skipped, skipped_id in expected:
            yield skipped, skipped_id, empty
