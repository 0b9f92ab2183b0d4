"""Functors as EXtra-pasha defines them (split, iterate, wrapping), the default context, and what a
Python process forked by pasha's workers is told."""

import os
import sys

import numpy as np
import pytest
import xarray as xr

import pasha as psh
from pasha.functor import Functor, gen_split_slices


def test_split_gives_the_slices_extra_pasha_gives():
    assert gen_split_slices(10, n_parts=3) == [slice(0, 3), slice(3, 6), slice(6, 10)]
    assert gen_split_slices(10, part_len=4) == [slice(0, 3), slice(3, 6), slice(6, 10)]
    assert gen_split_slices(2, n_parts=4) == [slice(0, 0), slice(0, 1), slice(1, 1), slice(1, 2)]
    with pytest.raises(ValueError, match='part_len or n_parts'):
        gen_split_slices(3)
    functor = Functor.try_wrap(np.arange(4) + 1)
    assert functor.split(2) == [np.s_[0:2], np.s_[2:4]]
    assert [tuple(entry) for entry in functor.iterate(np.s_[1:3])] == [(1, 2), (2, 3)]


@pytest.mark.parametrize('value, expected', [
    ([1, 2], psh.SequenceFunctor), ((1,), psh.SequenceFunctor), (range(3), psh.SequenceFunctor),
    (np.arange(3), psh.NdarrayFunctor), (xr.DataArray(np.arange(3)), psh.DataArrayFunctor)])
def test_try_wrap_finds_the_functor_type_for_a_value(value, expected):
    assert type(Functor.try_wrap(value)) is expected


def test_subclasses_register_by_being_defined_and_unknown_values_are_value_errors():
    marker = object()
    with pytest.raises(ValueError, match='no default functor'):
        Functor.try_wrap(marker)

    class MarkerFunctor(Functor):
        @classmethod
        def wrap(cls, value):
            return cls() if value is marker else None

    assert isinstance(Functor.try_wrap(marker), MarkerFunctor)

    class AlsoMarker(Functor):
        @classmethod
        def wrap(cls, value):
            return cls() if value is marker else None

    with pytest.raises(ValueError, match='ambiguous'):
        Functor.try_wrap(marker)
    Functor._functor_types.remove(AlsoMarker)
    Functor._functor_types.remove(MarkerFunctor)


def test_extra_data_functor_wraps_nothing_without_extra_data():
    assert psh.ExtraDataFunctor.wrap([1, 2]) is None


def test_the_initial_default_context_is_processes_with_one_worker_per_core():
    # In a fresh interpreter: another test may have changed this one's default.
    import subprocess
    out = subprocess.run([sys.executable, '-c', 'import pasha as psh; c = psh.get_default_context(); '
                          'from pasha import _pasha; print(type(c).__name__, c.num_workers == _pasha.default_num_workers())'],
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)), capture_output=True, text=True)
    assert out.stdout.split() == ['ProcessContext', 'True'], out.stderr


def test_set_default_context_by_name_object_and_bad_values():
    psh.set_default_context('threads', num_workers=3)
    assert isinstance(psh.get_default_context(), psh.ThreadContext)
    assert psh.get_default_context().num_workers == 3
    ctx = psh.SerialContext()
    psh.set_default_context(ctx)
    assert psh.get_default_context() is ctx
    with pytest.raises(ValueError, match="'gpu'"):
        psh.set_default_context('gpu')
    with pytest.raises(TypeError, match='42'):
        psh.set_default_context(42)
    psh.set_default_context('processes', 2)
    out = psh.alloc(5, fill=0)

    def kernel(worker_id, index, value):
        out[index] = value

    psh.map(kernel, [1.0, 2, 3, 4, 5])
    assert list(out) == [1, 2, 3, 4, 5]


def test_worker_processes_are_python_processes_told_of_their_fork():
    # os.register_at_fork callbacks run in every worker, those the fork tree clones included.
    ctx = psh.ProcessContext(7)
    told = ctx.alloc(7, np.int64, fill=0)
    parent = os.getpid()
    marks = []
    os.register_at_fork(after_in_child=lambda: marks.append(os.getpid()))

    def kernel(worker_id, index, value):
        import threading
        told[worker_id] = 1 if (marks and marks[-1] == os.getpid() != parent
                                and threading.current_thread() is threading.main_thread()) else 2

    ctx.map(kernel, range(7))
    assert list(told) == [1] * 7


def test_what_workers_print_is_printed_once_and_the_callers_buffer_is_not_repeated(capfd):
    ctx = psh.ProcessContext(3)
    print('before the map', end='')  # buffered, not yet written

    def kernel(worker_id, index, value):
        print(f'element {index}\n', end='', flush=True)  # one write: workers' lines may interleave, not repeat

    ctx.map(kernel, range(6))
    out = capfd.readouterr().out
    assert out.count('before the map') == 1
    for i in range(6):
        assert out.count(f'element {i}\n') == 1
