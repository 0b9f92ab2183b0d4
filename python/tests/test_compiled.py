"""Compiled kernels (pasha.compiled): numba.njit kernels that pasha's workers call natively, without the
GIL, in every context: their results, per-worker arrays, XFEL data, their exceptions, Ctrl-C, and the
errors that name what a compiled kernel cannot take."""

import os
import threading
import time
from pathlib import Path

import numba
import numpy as np
import pytest
import xarray as xr

import pasha as psh
import pasha.xfel
from conftest import ONE_OF_EACH, children_of_this_process, write_run
from test_errors import run_script


@numba.njit
def triple(worker_id, index, value, out):
    out[index] = 3 * value


@numba.njit
def triple_unless_negative(worker_id, index, value, out):
    if value < 0:
        raise ValueError('a negative value')
    out[index] = 3 * value


@numba.njit
def row_sums(worker_id, index, row, sums, elements_per_worker):
    total = 0.0
    for x in row:
        total += x
    sums[index] = total
    elements_per_worker[worker_id] += 1


def test_a_compiled_kernel_writes_every_element_in_every_context(ctx):
    inp = np.random.default_rng(1).random(100_003)
    out = ctx.alloc(like=inp, fill=-1)
    ctx.map(triple, inp, out)
    np.testing.assert_allclose(out, 3 * inp)


@pytest.mark.parametrize('schedule', ['static', 'dynamic'])
def test_rows_of_a_2d_array_and_per_worker_arrays(ctx, schedule):
    data = np.random.default_rng(2).random((1000, 33))
    sums = ctx.alloc(shape=1000)
    per_worker = ctx.zeros_per_worker((), np.int64)
    ctx.map(row_sums, data, sums, per_worker, schedule=schedule, chunk=7)
    np.testing.assert_allclose(sums, data.sum(axis=1))
    assert per_worker.sum() == 1000
    assert (per_worker > 0).sum() == min(ctx.num_workers, 1000) or schedule == 'dynamic'


def test_other_axes_sequences_and_data_arrays_give_the_values_a_python_kernel_gets(any_ctx):
    data = np.random.default_rng(3).random((6, 50))
    sums = any_ctx.alloc(shape=50)
    per_worker = any_ctx.zeros_per_worker((), np.int64)
    any_ctx.map(row_sums, psh.NdarrayFunctor(data, axis=1), sums, per_worker)
    np.testing.assert_allclose(sums, data.sum(axis=0))
    any_ctx.map(row_sums, xr.DataArray(data, dims=('x', 'y')), sums[:6], per_worker)
    np.testing.assert_allclose(sums[:6], data.sum(axis=1))
    out = any_ctx.alloc(shape=10)
    any_ctx.map(triple, range(10), out)
    np.testing.assert_array_equal(out, 3 * np.arange(10))
    any_ctx.map(triple, [1.5, 2.5], out)
    np.testing.assert_array_equal(out[:2], [4.5, 7.5])


@numba.njit
def sum_of_train(worker_id, index, train_id, data, sums, train_ids, rows):
    total = 0
    for x in data.ravel():
        total += x
    sums[index] = total
    train_ids[index] = train_id
    rows[index] = data.shape[0]


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp('run'), '--trains', '40')


@pytest.mark.parametrize('name', list(ONE_OF_EACH))
def test_an_xfel_key_gives_each_trains_id_and_rows_count_first(run_dir, name):
    ctx = ONE_OF_EACH[name]()
    images = psh.xfel.RunDirectory(run_dir)['FXE_XAD_GEC/CAM/CAMERA:daqOutput', 'data.image.pixels']
    n = len(images.train_ids)
    expected = np.zeros(n, np.uint64)

    def python_sum(worker_id, index, train_id, data):
        expected[index] = 0 if data is None else data.sum(dtype=np.uint64)

    psh.SerialContext().map(python_sum, images)
    sums = ctx.alloc(shape=n, dtype=np.uint64, fill=7)
    train_ids = ctx.alloc(shape=n, dtype=np.uint64, fill=0)
    rows = ctx.alloc(shape=n, dtype=np.int64, fill=-1)
    ctx.map(sum_of_train, images, sums, train_ids, rows, schedule='dynamic')
    np.testing.assert_array_equal(sums, expected)
    np.testing.assert_array_equal(train_ids, images.train_ids)
    np.testing.assert_array_equal(rows, images.data_counts().values)
    assert (rows == 0).any() and (rows > 1).any()  # trains without data and with several rows


def test_a_compiled_kernels_exception_is_raised_as_itself_and_stops_the_others(ctx):
    inp = np.ones(200_000)
    inp[150_001] = -1
    out = ctx.alloc(like=inp, fill=0)
    with pytest.raises(ValueError, match='a negative value') as raised:
        ctx.map(triple_unless_negative, inp, out)
    assert 0 <= raised.value.worker_id < ctx.num_workers
    # The failing element's worker stopped there; what the others did is theirs.
    assert out[150_001] == 0
    if ctx.num_workers == 1:
        assert (out[150_001:] == 0).all()
    ctx.map(triple, np.ones(10), out)  # the next map runs
    assert (out[:10] == 3).all()
    assert not children_of_this_process()


@numba.njit(boundscheck=True)
def out_of_bounds(worker_id, index, value, out):
    out[index + 1] = value


def test_an_index_out_of_bounds_under_boundscheck_is_an_index_error(any_ctx):
    out = any_ctx.alloc(shape=100)
    with pytest.raises(IndexError):
        any_ctx.map(out_of_bounds, np.arange(100.0), out)


@pytest.mark.parametrize('kind', ['serial', 'threads', 'processes'])
def test_ctrl_c_stops_a_long_compiled_map_and_leaves_no_process(kind):
    code, out, err = run_script(f'''
        import os, sys, threading, time
        import numba
        import numpy as np
        import pasha as psh
        ctx = psh.{ {'serial': 'SerialContext()', 'threads': 'ThreadContext(2)', 'processes': 'ProcessContext(2)'}[kind] }
        started = ctx.alloc(shape=1, dtype=np.int64, fill=0)

        @numba.njit
        def slow(worker_id, index, value, started, out):
            started[0] = 1
            total = 0.0
            for k in range(300000):
                total += np.sin(k * value)
            out[index] = total

        def say_when_a_kernel_runs():  # a Python thread: the compiled kernels leave the GIL free
            while started[0] == 0:
                time.sleep(0.001)
            os.write(1, b'in a kernel\\n')

        out = ctx.alloc(shape=100000)
        ctx.map(slow, np.ones(1), started, out[:1])  # compiled before the watch starts
        started[0] = 0
        threading.Thread(target=say_when_a_kernel_runs, daemon=True).start()
        begin = time.monotonic()
        try:
            ctx.map(slow, np.ones(100000), started, out)
        except KeyboardInterrupt:
            children = open('/proc/self/task/%d/children' % os.getpid()).read().split()
            print('interrupted after %.1f s; children:' % (time.monotonic() - begin), children, flush=True)
            sys.exit(0)
        print('not interrupted', flush=True)
    ''', interrupt_in_a_kernel=True)
    assert code == 0, err
    assert 'children: []' in out, out + err
    assert float(out.split('interrupted after ')[1].split()[0]) < 5, out  # within 1/512 of a share


@numba.njit
def long_sum(worker_id, index, value, out):
    total = 0.0
    for k in range(int(value)):
        total += np.sin(k * 1e-3)
    out[index] = total


def test_compiled_kernels_run_without_the_gil(any_ctx):
    # Each element is one native call of about half a second: a Python thread counts on meanwhile only if
    # no worker holds the GIL while it runs.
    out = any_ctx.alloc(shape=2)
    any_ctx.map(long_sum, np.array([1.0, 1.0]), out)  # compiled before the count
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.001)

    ticker = threading.Thread(target=tick)
    ticker.start()
    begin = time.monotonic()
    any_ctx.map(long_sum, np.array([2e7, 2e7]), out)
    end = time.monotonic()
    stop.set()
    ticker.join()
    assert out[0] == out[1] != 0
    assert end - begin > 0.1
    assert sum(begin + 0.05 < t < end - 0.05 for t in ticks) > 10, (end - begin, len(ticks))


def test_what_a_compiled_kernel_cannot_take_is_a_clear_error():
    ctx = psh.SerialContext()
    out = np.zeros(10)
    with pytest.raises(TypeError, match='arrays after the collection are for compiled kernels'):
        ctx.map(lambda worker_id, index, value, out: None, range(10), out)
    with pytest.raises(TypeError, match='C- or F-contiguous; array 0 after the collection is not'):
        ctx.map(triple, range(5), out[::2])
    with pytest.raises(TypeError, match='hold numbers numba knows.*array 0 after the collection has dtype object'):
        ctx.map(triple, range(5), np.zeros(5, dtype=object))
    with pytest.raises(TypeError, match='numpy arrays; array 1 after the collection is list'):
        ctx.map(row_sums, np.zeros((2, 2)), out, [0, 0])
    with pytest.raises(TypeError, match='maps over numbers'):
        ctx.map(triple, ['a', 'b'], out)
    hooked = psh.with_init(lambda worker_id: None)(numba.njit(lambda worker_id, index, value, out: None))
    with pytest.raises(TypeError, match='a compiled kernel takes none'):
        ctx.map(hooked, range(5), out)
    with pytest.raises(TypeError, match='not Broken'):
        class Broken(psh.functor.Functor):
            def split(self, num_workers):
                return [0]

            def iterate(self, share):
                yield 0, 0
        ctx.map(triple, Broken(), out)


def test_elements_have_the_axes_a_python_kernel_gets_or_the_map_says_why_not():
    a = np.arange(120.0).reshape(2, 3, 4, 5)
    ctx = psh.SerialContext()

    @numba.njit
    def keep_first(worker_id, index, value, out, first):
        out[index] = value.sum()
        if index == 0:
            first[...] = value

    for axis in (0, 1):
        python_first = []
        psh.SerialContext().map(lambda w, i, v: python_first.append(v.copy()) if i == 0 else None,
                                psh.NdarrayFunctor(a, axis=axis))
        first = np.zeros(python_first[0].shape)
        ctx.map(keep_first, psh.NdarrayFunctor(a, axis=axis), np.zeros(a.shape[axis]), first)
        np.testing.assert_array_equal(first, python_first[0])
    with pytest.raises(TypeError, match='first or second axis'):
        ctx.map(keep_first, psh.NdarrayFunctor(a, axis=2), np.zeros(4), np.zeros((3, 2, 5)))


def test_read_only_data_is_read_and_a_write_to_it_does_not_compile():
    data = np.arange(10.0)
    data.flags.writeable = False
    out = np.zeros(10)
    psh.ThreadContext(2).map(triple, data, out)
    np.testing.assert_array_equal(out, 3 * data)

    @numba.njit
    def writes_its_input(worker_id, index, value, data):
        data[index] = 0

    with pytest.raises(numba.core.errors.TypingError):
        psh.SerialContext().map(writes_its_input, range(10), data)
    assert (data == np.arange(10.0)).all()


def test_a_range_is_not_made_an_array_and_gives_its_values():
    total = np.zeros(1, np.int64)

    @numba.njit
    def add(worker_id, index, value, total):
        total[0] += value

    psh.SerialContext().map(add, range(5, 10**9, 7), total)  # no 10^9-element array made
    assert total[0] == sum(range(5, 10**9, 7))


def test_dtypes_numba_cannot_take_and_too_many_arrays_are_named():
    ctx = psh.SerialContext()
    with pytest.raises(TypeError, match="byte order; array 0 after the collection has dtype >f8"):
        ctx.map(triple, range(3), np.zeros(3, '>f8'))
    with pytest.raises(TypeError, match='numbers numba knows.*float16'):
        ctx.map(triple, np.zeros(3, np.float16), np.zeros(3))
    with pytest.raises(TypeError, match='at most 26 arrays, not 27'):
        ctx.map(triple, range(3), *[np.zeros(3)] * 27)


def test_compiled_entries_go_with_their_kernel():
    import gc
    import weakref
    kernels = []
    for k in range(3):
        kernel = numba.njit(lambda worker_id, index, value, out: None)
        psh.SerialContext().map(kernel, range(3), np.zeros(3))
        kernels.append(weakref.ref(kernel))
        del kernel
    gc.collect()
    assert [ref() for ref in kernels] == [None, None, None]


def test_a_kernel_numba_cannot_compile_for_these_types_raises_numbas_error():
    @numba.njit
    def takes_a_float_array(worker_id, index, value, out):
        out[index] = value.real.imag.nothing

    with pytest.raises(numba.core.errors.TypingError):
        psh.SerialContext().map(takes_a_float_array, np.zeros(3), np.zeros(3))


def test_the_readmes_compiled_kernel_example_runs(run_dir):
    readme = (Path(__file__).resolve().parents[2] / 'README.md').read_text()
    blocks = [block.split('```')[0] for block in readme.split('```python\n')[1:]]
    example, = [block for block in blocks if '@numba.njit' in block]
    images = psh.xfel.RunDirectory(run_dir)['FXE_XAD_GEC/CAM/CAMERA:daqOutput', 'data.image.pixels']
    namespace = {'images': images}
    exec(compile(example, 'README.md', 'exec'), namespace)
    expected = [0 if d is None else d.sum(dtype=np.float64) for _, d in images.trains(include_empty=True)]
    np.testing.assert_array_equal(namespace['sums'], expected)
