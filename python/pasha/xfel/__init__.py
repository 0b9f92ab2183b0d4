"""European XFEL run files, read by pasha's C++ reader, with EXtra-data's commonest calls.

A script written against EXtra-data's ``RunDirectory`` / ``H5File``, ``run[source, key]``,
``run[source]``, ``select``, ``select_trains`` (``by_id``, ``by_index``), ``train_ids``,
``all_sources``, ``keys_for_source``, ``ndarray()`` and ``trains()`` runs on a machine that has only
pasha, and every collection maps train by train::

    import pasha as psh
    from pasha.xfel import RunDirectory

    run = RunDirectory('/gpfs/exfel/exp/.../raw/r0450')
    images = run['FXE_XAD_GEC/CAM/CAMERA:daqOutput', 'data.image.pixels']
    sums = psh.alloc(shape=len(images.train_ids), dtype=np.float64)

    def kernel(worker_id, index, train_id, data):
        if data is not None:            # None: the train has no image
            sums[index] = data.sum()

    psh.map(kernel, images)

What a kernel gets is what EXtra-pasha's ExtraDataFunctor gives: for a ``KeyData`` the train's rows
(the entry alone when there is one, ``None`` when there is none), for a ``SourceData`` a dict
key -> rows, for a ``DataCollection`` a dict source -> key -> rows, each with ``'metadata'``. Unlike
EXtra-pasha, every train of ``train_ids`` is visited, ``index`` being its position there, whatever
trains are empty or missing from files (EXtra-data's iteration skips some and shifts the indices).

Reading: large rows stored as the key's type are mapped from the file (no copy; the array owns the
mapping), others are read into arrays of their own, outside the GIL and, for contiguous datasets,
without HDF5's global lock. Differences from EXtra-data: ``files`` are paths; keys stored as strings
are left out of the dicts a map or ``trains()`` gives (``run[source, key]`` of one is a FormatError);
``data_counts`` counts every selected train.

Errors: a file that cannot be read as a run file raises :class:`FormatError` (a ``ValueError``)
naming the file and HDF5 path; an unknown source :class:`SourceNameError`, an unknown key
:class:`PropertyNameError` (both ``KeyError``, as in EXtra-data).
"""

from __future__ import annotations

import fnmatch
import numbers
import os
import re
import warnings
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

from .. import _pasha

__all__ = ['RunDirectory', 'H5File', 'DataCollection', 'SourceData', 'KeyData', 'by_id', 'by_index',
           'FormatError', 'SourceNameError', 'PropertyNameError']

FormatError = _pasha.FormatError


class SourceNameError(KeyError):
    """A source the collection does not have (selected)."""

    def __init__(self, source: str):
        super().__init__(source)
        self.source = source

    def __str__(self) -> str:
        return f'This data has no source named {self.source!r}.'


class PropertyNameError(KeyError):
    """A key the source does not have (selected)."""

    def __init__(self, prop: str, source: str):
        super().__init__(prop)
        self.prop, self.source = prop, source

    def __str__(self) -> str:
        return f'No property {self.prop!r} for source {self.source!r}'


# --- Train selections -------------------------------------------------------------------------------

class _Selection:
    def __init__(self, kind: str, value: Any):
        self.kind, self.value = kind, value

    def __repr__(self) -> str:
        value = self.value
        if isinstance(value, slice):
            text = ':'.join('' if x is None else str(x) for x in (value.start, value.stop)) + (
                f':{value.step}' if value.step is not None else '')
        else:
            text = repr(value)
        return f'{self.kind}[{text}]'


class _Selector:
    def __init__(self, kind: str):
        self.kind = kind

    def __getitem__(self, value: Any) -> _Selection:
        return _Selection(self.kind, value)

    def __repr__(self) -> str:
        return self.kind


by_id = _Selector('by_id')
"""Selects trains by train id: ``by_id[10000:10050]`` (stop excluded), ``by_id[[10003, 10007]]``."""
by_index = _Selector('by_index')
"""Selects trains by position in ``train_ids``: ``by_index[10:20]``, ``by_index[[0, 3]]``."""


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) or (
        isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in 'iu')


def _train_selection(selection: Any, train_ids: np.ndarray) -> Any:
    """The C++ selection for EXtra-data's select_trains argument over `train_ids`."""
    trains = _pasha.XfelTrains
    n = len(train_ids)
    if isinstance(selection, _Selection) and selection.kind == 'by_id':
        value = selection.value
        if isinstance(value, slice):
            start = 0 if value.start is None else int(value.start)
            stop = int(train_ids[-1]) + 1 if value.stop is None else int(value.stop)
            if start < 0 or stop < 0:
                raise ValueError(f'train ids are not negative: {selection!r}')
            if value.step is None or value.step == 1:
                return trains.by_id_range(start, max(start, stop))
            wanted = train_ids[(train_ids >= start) & (train_ids < stop)]
            return trains.by_ids([int(t) for t in wanted if (int(t) - start) % value.step == 0])
        if _is_integer(value):
            return trains.by_ids([int(value)])
        return trains.by_ids([int(t) for t in np.asarray(value).ravel()])
    if isinstance(selection, _Selection):  # by_index
        selection = selection.value
    if isinstance(selection, slice):
        start, stop, step = selection.indices(n)
        if step == 1:
            return trains.by_index(start, max(start, stop))
        positions = range(start, stop, step)
    elif _is_integer(selection):
        position = int(selection)
        if not -n <= position < n:
            raise IndexError(f'train index {position} out of range for {n} trains')
        position %= n
        return trains.by_index(position, position + 1)
    elif isinstance(selection, (list, tuple, np.ndarray)):
        array = np.asarray(selection)
        if array.dtype == bool:
            if array.shape != (n,):
                raise ValueError(f'a boolean train selection needs {n} values, not {array.shape}')
            positions = np.flatnonzero(array)
        elif array.size == 0 or array.dtype.kind in 'iu':
            positions = array.astype(np.int64).ravel()
            if positions.size and (positions.min() < -n or positions.max() >= n):
                raise IndexError(f'train indices out of range for {n} trains: {selection!r}')
        else:
            raise TypeError(f'cannot select trains with {type(selection)} of {array.dtype}')
    else:
        raise TypeError(type(selection))
    return trains.by_ids([int(train_ids[p]) for p in positions])


def _glob_escape(name: str) -> str:
    return re.sub(r'([\[\]*?])', r'[\1]', name)


# --- Collections ------------------------------------------------------------------------------------

class KeyData:
    """One key of one source over the collection's trains (``run[source, key]``), read as its stored
    numeric type. CONTROL keys may be named without ``.value``."""

    def __init__(self, key: Any, section: str):
        self._engine = key
        self.source: str = key.source
        self.key: str = key.key
        self.section = section

    def __repr__(self) -> str:
        return f'<pasha.xfel.KeyData source={self.source!r} key={self.key!r} for {len(self._engine)} trains>'

    @property
    def train_ids(self) -> List[np.uint64]:
        return list(self._engine.train_ids)

    @property
    def dtype(self) -> np.dtype:
        return self._engine.dtype

    @property
    def entry_shape(self) -> Tuple[int, ...]:
        return self._engine.entry_shape

    @property
    def shape(self) -> Tuple[int, ...]:
        """(entries in the selected trains,) + entry_shape."""
        return self._engine.shape

    @property
    def ndim(self) -> int:
        return len(self.entry_shape) + 1

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def size_mb(self) -> float:
        return self.nbytes / 1e6

    @property
    def size_gb(self) -> float:
        return self.nbytes / 1e9

    def data_counts(self, labelled: bool = True) -> Any:
        """Entries per train: a pandas Series by train id, or (labelled=False) an array aligned with
        train_ids."""
        counts = self._engine.data_counts()
        if not labelled:
            return counts
        import pandas as pd
        return pd.Series(counts, index=pd.Index(self._engine.train_ids, name='trainId'))

    def train_id_coordinates(self) -> np.ndarray:
        """The train id of each entry of ndarray()."""
        return self._engine.train_id_coordinates()

    def ndarray(self) -> np.ndarray:
        """Every entry of the selected trains, in train order, in one array."""
        return self._engine.ndarray()

    def select_trains(self, trains: Any) -> 'KeyData':
        return KeyData(self._engine.select_trains(_train_selection(trains, self._engine.train_ids)), self.section)

    def __getitem__(self, trains: Any) -> 'KeyData':
        return self.select_trains(trains)

    def train_from_index(self, index: int, keep_dims: bool = False) -> Tuple[np.uint64, Any]:
        n = len(self._engine)
        if not -n <= index < n:
            raise IndexError(f'train index {index} out of range for {n} trains')
        return self._train(index % n, keep_dims)

    def train_from_id(self, train_id: int, keep_dims: bool = False) -> Tuple[np.uint64, Any]:
        positions = np.flatnonzero(self._engine.train_ids == train_id)
        if positions.size == 0:
            raise KeyError(f'train id {train_id} is not in this data')
        return self._train(int(positions[0]), keep_dims)

    def trains(self, keep_dims: bool = False, include_empty: bool = False) -> Iterator[Tuple[np.uint64, Any]]:
        """(train_id, entries) for each train: the entry alone when there is one (all entries with
        `keep_dims`); trains without entries are left out unless `include_empty` (then None, or an
        empty array with `keep_dims`)."""
        for index in range(len(self._engine)):
            train_id, data = self._train(index, keep_dims)
            empty = data is None or (keep_dims and len(data) == 0)
            if empty and not include_empty:
                continue
            yield train_id, data

    def _train(self, index: int, keep_dims: bool) -> Tuple[np.uint64, Any]:
        return self._engine.train(index, keep_dims)

    def close(self) -> None:
        """Closes the files this process opened; later reads reopen them."""
        self._engine.close()


class SourceData:
    """One source over the collection's trains (``run[source]``); ``source_data[key]`` is a KeyData."""

    def __init__(self, run: 'DataCollection', source: str):
        self._run = run
        self._engine = run._engine.source(source)
        self.source = source
        self.section = 'CONTROL' if source in run.control_sources else 'INSTRUMENT'

    def __repr__(self) -> str:
        return f'<pasha.xfel.SourceData source={self.source!r} for {len(self._engine)} trains>'

    @property
    def train_ids(self) -> List[np.uint64]:
        return list(self._engine.train_ids)

    def keys(self, inc_timestamps: bool = True) -> set:
        keys = set(self._engine.keys)
        if self.section == 'CONTROL' and not inc_timestamps:
            return {k[:-len('.value')] for k in keys if k.endswith('.value')}
        return keys

    def __contains__(self, key: str) -> bool:
        return key in self._engine.keys or key + '.value' in self._engine.keys

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, str):
            return self._run[self.source, item]
        return self.select_trains(item)

    def select_trains(self, trains: Any) -> 'SourceData':
        return SourceData(self._run.select_trains(trains), self.source)

    def trains(self) -> Iterator[Tuple[int, Dict[str, Any]]]:
        """(train_id, {key: entries, 'metadata': ...}) for each train."""
        for index in range(len(self._engine)):
            yield self._engine.train(index)


class DataCollection:
    """A run (or some of its files) with a selection of sources, keys and trains. Open one with
    :func:`RunDirectory` or :func:`H5File`."""

    def __init__(self, engine: Any):
        self._engine = engine

    def __repr__(self) -> str:
        return (f'<pasha.xfel.DataCollection of {len(self._engine.files)} files, {len(self._engine)} trains, '
                f'{len(self.all_sources)} sources>')

    @property
    def train_ids(self) -> List[np.uint64]:
        return list(self._engine.train_ids)

    @property
    def files(self) -> List[str]:
        return list(self._engine.files)

    @property
    def all_sources(self) -> frozenset:
        return frozenset(self._engine.all_sources)

    @property
    def control_sources(self) -> frozenset:
        return frozenset(self._engine.control_sources)

    @property
    def instrument_sources(self) -> frozenset:
        return frozenset(self._engine.instrument_sources)

    def keys_for_source(self, source: str) -> set:
        self._check_source(source)
        return set(self._engine.keys_for_source(source))

    def _check_source(self, source: str) -> None:
        if source not in self._engine.all_sources:
            raise SourceNameError(source)

    def select(self, seln_or_source_glob: Any, key_glob: str = '*') -> 'DataCollection':
        """A collection of the sources and keys chosen: a source glob and a key glob, a list of
        (source glob, key glob) pairs or of source globs, or a dict {source: set of keys or None}."""
        selection = seln_or_source_glob
        if isinstance(selection, str):
            patterns = [(selection, key_glob)]
        elif isinstance(selection, dict):
            patterns = []
            for source, keys in selection.items():
                if not keys:
                    patterns.append((_glob_escape(source), '*'))
                else:
                    patterns.extend((_glob_escape(source), _glob_escape(key)) for key in keys)
        else:
            try:
                items = list(selection)
            except TypeError:
                raise TypeError(f'cannot select with {type(selection)}') from None
            patterns = [(item, '*') if isinstance(item, str) else tuple(item) for item in items]
        try:
            return DataCollection(self._engine.select(patterns))
        except ValueError as error:
            raise ValueError(f'{error} (select {selection!r})') from None

    def select_trains(self, trains: Any) -> 'DataCollection':
        return DataCollection(self._engine.select_trains(_train_selection(trains, self._engine.train_ids)))

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str) for x in item):
            source, key = item
            self._check_source(source)
            keys = self._engine.keys_for_source(source)
            if key not in keys and key + '.value' not in keys:
                raise PropertyNameError(key, source)
            section = 'CONTROL' if source in self._engine.control_sources else 'INSTRUMENT'
            return KeyData(self._engine.key(source, key), section)
        if isinstance(item, str):
            self._check_source(item)
            return SourceData(self, item)
        if isinstance(item, (_Selection, slice, list, np.ndarray, numbers.Integral)):
            return self.select_trains(item)
        raise TypeError('Expected data[source], data[source, key] or data[train_selection]')

    def __contains__(self, item: Any) -> bool:
        if isinstance(item, tuple):
            source, key = item
            return source in self._engine.all_sources and (
                key in self._engine.keys_for_source(source) or key + '.value' in self._engine.keys_for_source(source))
        return item in self._engine.all_sources

    def trains(self) -> Iterator[Tuple[int, Dict[str, Dict[str, Any]]]]:
        """(train_id, {source: {key: entries, 'metadata': ...}}) for every train."""
        for index in range(len(self._engine)):
            yield self._engine.train(index)

    def train_from_index(self, index: int) -> Tuple[int, Dict[str, Dict[str, Any]]]:
        n = len(self._engine)
        if not -n <= index < n:
            raise IndexError(f'train index {index} out of range for {n} trains')
        return self._engine.train(index % n)

    def train_from_id(self, train_id: int) -> Tuple[int, Dict[str, Dict[str, Any]]]:
        positions = np.flatnonzero(self._engine.train_ids == train_id)
        if positions.size == 0:
            raise KeyError(f'train id {train_id} is not in this data')
        return self._engine.train(int(positions[0]))

    def close(self) -> None:
        """Closes the files this process opened; later reads reopen them."""
        self._engine.close()


def _opened(engine: Any) -> DataCollection:
    for path, reason in engine.skipped_files:
        warnings.warn(f'Skipping file {path}: {reason}', stacklevel=3)
    return DataCollection(engine)


def RunDirectory(path: str, include: str = '*', *, inc_suspect_trains: bool = True) -> DataCollection:
    """The run in directory `path`: its ``*.h5`` files (but overview.h5) whose names match `include`.
    Files that cannot be read are skipped with a warning, as EXtra-data does; a directory with no
    readable file is a FormatError."""
    path = os.fspath(path)
    if include == '*':
        return _opened(_pasha.xfel_run_directory(path, bool(inc_suspect_trains), True))
    try:
        names = os.listdir(path)
    except OSError as error:
        raise FormatError(f'{path}: cannot open run directory: {error.strerror}') from None
    files = [os.path.join(path, name) for name in fnmatch.filter(names, include)
             if name.endswith('.h5') and name.lower() != 'overview.h5']
    if not files:
        raise FileNotFoundError(f'No HDF5 files found in {path} with glob pattern {include}')
    return _opened(_pasha.xfel_run_files(files, bool(inc_suspect_trains), True))


def H5File(path: str, *, inc_suspect_trains: bool = True) -> DataCollection:
    """One run file."""
    return DataCollection(_pasha.xfel_h5file(os.fspath(path), bool(inc_suspect_trains)))


def _from_extra_data(value: Any) -> Any:
    """The pasha.xfel collection reading what EXtra-data's DataCollection, SourceData or KeyData
    `value` reads: the same files, sources, keys and trains (internal, for ExtraDataFunctor)."""
    files = sorted({os.fspath(getattr(f, 'filename', f)) for f in value.files})
    run = DataCollection(_pasha.xfel_run_files(files, bool(getattr(value, 'inc_suspect_trains', True)), False))
    trains = by_id[[int(t) for t in value.train_ids]]
    if hasattr(value, 'key') and hasattr(value, 'source') and not hasattr(value, 'selection'):
        return run.select_trains(trains)[value.source, value.key]
    if hasattr(value, 'selection'):  # a DataCollection
        return run.select(value.selection).select_trains(trains)
    keys = getattr(value, 'sel_keys', None)  # a SourceData
    return run.select({value.source: keys}).select_trains(trains)[value.source]
