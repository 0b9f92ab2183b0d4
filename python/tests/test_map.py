"""What a map does in every context: each element once, with its index and value, worker ids in
range, results written in place; the collections EXtra-pasha's users map over."""

import os
import sys
import threading
import time

import numpy as np
import pytest
import xarray as xr

import pasha as psh
from pasha.functor import Functor, gen_split_slices


def record_visits(ctx, functor, n):
    """Maps over `functor` recording, per index, how often it was visited and by which worker."""
    visits = ctx.alloc(n, np.int64, fill=0)
    workers = ctx.alloc(n, np.int64, fill=-1)

    def kernel(worker_id, index, *values):
        visits[index] += 1
        workers[index] = worker_id

    ctx.map(kernel, functor)
    return visits, workers


def test_every_index_is_visited_once_with_its_value_and_results_are_seen_by_the_caller(ctx):
    inp = np.random.rand(1001)
    outp = ctx.alloc(like=inp)

    def triple(worker_id, index, value):
        outp[index] = 3 * value

    ctx.map(triple, inp)
    np.testing.assert_allclose(outp, 3 * inp)


def test_worker_ids_are_in_range_and_shares_are_contiguous_and_ascending(ctx):
    visits, workers = record_visits(ctx, range(1000), 1000)
    assert (visits == 1).all()
    assert workers.min() >= 0 and workers.max() < ctx.num_workers
    assert (np.diff(workers) >= 0).all(), 'worker w gets share w, in order'
    assert len(set(workers)) == min(ctx.num_workers, 1000)


@pytest.mark.parametrize('collection', [[1, 2, 3, 4, 5], (10, 20, 30), range(3, 9), 'abc'],
                         ids=['list', 'tuple', 'range', 'str'])
def test_sequences_give_their_items(ctx, collection):
    seen = ctx.alloc(len(collection), object if not isinstance(ctx, psh.ProcessContext) else np.float64,
                     fill=0)

    def kernel(worker_id, index, value):
        seen[index] = ord(value) if isinstance(value, str) else value

    ctx.map(kernel, collection)
    expected = [ord(v) if isinstance(v, str) else v for v in collection]
    assert list(seen) == expected


def test_a_one_d_array_gives_numpy_scalars_and_an_n_d_array_gives_row_views(ctx):
    types = ctx.alloc(4, np.int64, fill=0)
    rows = ctx.alloc((4, 3), fill=0)
    matrix = np.arange(12.0).reshape(4, 3)

    def scalars(worker_id, index, value):
        types[index] = isinstance(value, np.float64)

    def row_sums(worker_id, index, row):
        rows[index] = row * 2
        assert row.base is not None  # a view of the input, not a copy

    ctx.map(scalars, np.arange(4.0))
    ctx.map(row_sums, matrix)
    assert (types == 1).all()
    np.testing.assert_array_equal(rows, matrix * 2)


def test_ndarray_functor_maps_along_another_axis(ctx):
    inp = np.arange(24.0).reshape(2, 3, 4)
    sums = ctx.alloc(4, fill=0)

    def kernel(worker_id, index, sub):
        sums[index] = sub.sum()

    ctx.map(kernel, psh.NdarrayFunctor(inp, axis=2))
    np.testing.assert_array_equal(sums, inp.sum(axis=(0, 1)))


def test_dataarray_functor_gives_dataarrays_along_a_named_dimension(any_ctx):
    da = xr.DataArray(np.arange(12.0).reshape(3, 4), dims=['train', 'pulse'],
                      coords={'train': [10, 11, 12]})
    by_pulse = any_ctx.alloc(4, fill=0)
    train_ids = any_ctx.alloc(3, np.int64, fill=0)

    def per_pulse(worker_id, index, sub):
        assert isinstance(sub, xr.DataArray) and sub.dims == ('train',)
        by_pulse[index] = float(sub.sum())

    def per_train(worker_id, index, sub):
        train_ids[index] = int(sub.coords['train'])

    any_ctx.map(per_pulse, psh.DataArrayFunctor(da, dim='pulse'))
    any_ctx.map(per_train, da)
    np.testing.assert_array_equal(by_pulse, da.values.sum(axis=0))
    assert list(train_ids) == [10, 11, 12]


class Squares(Functor):
    """A functor of its own: more shares than workers, values computed in iterate."""

    def __init__(self, n, shares):
        self.n, self.shares = n, shares

    def split(self, num_workers):
        return gen_split_slices(self.n, n_parts=self.shares)

    def iterate(self, share):
        for i in range(*share.indices(self.n)):
            yield i, i * i, -i


def test_a_functor_of_the_users_runs_each_share_once_even_with_more_shares_than_workers(ctx):
    out = ctx.alloc((50, 2), np.int64, fill=0)

    def kernel(worker_id, index, square, negative):
        out[index] = (square, negative)

    ctx.map(kernel, Squares(50, shares=13))
    np.testing.assert_array_equal(out[:, 0], np.arange(50) ** 2)
    np.testing.assert_array_equal(out[:, 1], -np.arange(50))


def test_types_with_pasha_functor_are_mapped_through_it(ctx):
    class Run:
        def _pasha_functor_(self):
            return Squares(10, shares=2)

    out = ctx.alloc(10, np.int64, fill=0)

    def kernel(worker_id, index, square, negative):
        out[index] = square

    ctx.map(kernel, Run())
    np.testing.assert_array_equal(out, np.arange(10) ** 2)


def test_a_subclass_that_changes_iterate_is_iterated_as_it_says(ctx):
    class Doubled(psh.SequenceFunctor):
        @classmethod
        def wrap(cls, value):
            return None  # registered by being defined: it must not claim every sequence

        def iterate(self, share):
            for index, value in super().iterate(share):
                yield index, 2 * value

    out = ctx.alloc(6, fill=0)

    def kernel(worker_id, index, value):
        out[index] = value

    ctx.map(kernel, Doubled([1, 2, 3, 4, 5, 6]))
    np.testing.assert_array_equal(out, [2, 4, 6, 8, 10, 12])


def test_empty_collections_call_no_kernel(ctx):
    calls = ctx.alloc(1, np.int64, fill=0)

    def kernel(worker_id, index, value):
        calls[0] += 1

    ctx.map(kernel, np.zeros(0))
    ctx.map(kernel, [])
    assert calls[0] == 0


def test_the_dynamic_schedule_visits_every_index_once(ctx):
    visits = ctx.alloc(997, np.int64, fill=0)

    def kernel(worker_id, index, value):
        visits[index] += 1

    ctx.map(kernel, range(997), schedule='dynamic', chunk=10)
    assert (visits == 1).all()


def test_a_map_inside_a_kernel_runs_inline_with_the_outer_workers_id(any_ctx):
    ids = any_ctx.alloc((4, 3), np.int64, fill=-1)
    outer_ids = any_ctx.alloc(4, np.int64, fill=-1)

    def outer(worker_id, i, value):
        outer_ids[i] = worker_id

        def inner(inner_worker, j, v):
            ids[i, j] = inner_worker

        any_ctx.map(inner, range(3))

    any_ctx.map(outer, range(4))
    for i in range(4):
        assert (ids[i] == outer_ids[i]).all()


def test_maps_from_several_python_threads_each_get_their_results(any_ctx):
    errors = []

    def mapper(t):
        try:
            for _ in range(5):
                out = any_ctx.alloc(200, fill=0)

                def kernel(worker_id, index, value):
                    out[index] = value + t

                any_ctx.map(kernel, np.arange(200.0))
                np.testing.assert_array_equal(out, np.arange(200.0) + t)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=mapper, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_thread_workers_run_python_in_threads_of_this_process(any_ctx):
    pids = any_ctx.alloc(any_ctx.num_workers, np.int64, fill=0)

    def kernel(worker_id, index, value):
        pids[worker_id] = os.getpid()

    any_ctx.map(kernel, range(any_ctx.num_workers))
    if isinstance(any_ctx, psh.ProcessContext):
        assert os.getpid() not in pids and len(set(pids)) == any_ctx.num_workers
    else:
        assert (pids == os.getpid()).all()


def test_numpy_releases_the_gil_so_thread_workers_overlap():
    # Worker 1 runs Python (a counter, giving the GIL up at each step) while worker 0 sorts. With the
    # switch interval made long, no thread is preempted: worker 1 counts during a sort only if worker
    # 0 let the GIL go for it, as a Python thread running numpy does.
    ctx = psh.ThreadContext(2)
    rows = np.random.rand(2, 2_000_000)
    counter = ctx.alloc(1, np.int64, fill=0)
    counted_during_sorts = ctx.alloc(1, np.int64, fill=0)
    done = ctx.alloc(1, np.int64, fill=0)

    def kernel(worker_id, index, row):
        if index == 1:
            while not done[0]:
                counter[0] += 1
                time.sleep(0)  # gives the GIL up
            return
        deadline = time.monotonic() + 60
        while counter[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        for _ in range(20):
            before = counter[0]
            np.sort(row)  # numpy without the GIL
            counted_during_sorts[0] += counter[0] - before
            if counted_during_sorts[0]:
                break
        done[0] = 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(30)
    try:
        ctx.map(kernel, rows)
    finally:
        sys.setswitchinterval(interval)
    assert counter[0] > 0, 'worker 1 never ran'
    assert counted_during_sorts[0] > 0, 'worker 1 ran no Python while worker 0 was inside numpy'


def test_progress_reports_on_stderr(capfd):
    ctx = psh.ProcessContext(2)

    def kernel(worker_id, index, value):
        pass

    ctx.map(kernel, range(1000), progress=True)
    assert '1000/1000' in capfd.readouterr().err


def test_bad_map_arguments_are_value_or_type_errors_naming_them(any_ctx):
    with pytest.raises(TypeError, match='must be callable'):
        any_ctx.map(42, range(3))
    with pytest.raises(ValueError, match='no default functor'):
        any_ctx.map(lambda *args: None, {1, 2, 3})
    with pytest.raises(ValueError, match="'sometimes'"):
        any_ctx.map(lambda *args: None, range(3), schedule='sometimes')
    with pytest.raises(ValueError, match='-1'):
        any_ctx.map(lambda *args: None, range(3), chunk=-1)
    with pytest.raises(ValueError, match='num_workers'):
        psh.ThreadContext(0)
    with pytest.raises(TypeError, match='num_workers'):
        psh.ProcessContext('4')
    with pytest.raises(ValueError, match='binding policy "wherever"'):
        psh.ProcessContext(2, binding='wherever')


@pytest.mark.parametrize('bad', [np.array(2.7), np.array([3]), np.bool_(True), True, 2.0, '4'],
                         ids=['0-d float array', 'array', 'np.bool_', 'bool', 'float', 'str'])
def test_only_integers_are_worker_counts_and_chunks(bad):
    with pytest.raises(TypeError, match='num_workers'):
        psh.ThreadContext(bad)
    with pytest.raises(ValueError, match='chunk'):
        psh.SerialContext().map(lambda *args: None, range(3), chunk=bad)
    assert psh.ThreadContext(np.int64(2)).num_workers == 2


def test_twenty_hooks_on_one_kernel_run_in_order(any_ctx):
    calls = any_ctx.alloc(1, np.int64, fill=0)
    order = any_ctx.alloc(20, np.int64, fill=-1)

    def kernel(worker_id, index, value):
        pass

    class Numbered(psh.util.MapHook):
        def __init__(self, number):
            self.number = number

        def pre_map(self, context, function):
            order[self.number] = calls[0]
            calls[0] += 1
            return function

    for number in range(20):
        Numbered(number)(kernel)
    any_ctx.map(kernel, range(3))
    assert list(order) == list(range(20))


@pytest.mark.parametrize('kind', ['serial', 'threads', 'processes'])
def test_maps_from_two_threads_never_run_two_kernels_under_one_worker_id(kind):
    # Each kernel blocks (as on a slow file) for longer than anything pasha could take for "waiting for
    # me": the second thread's map still waits its turn.
    ctx = {'serial': psh.SerialContext, 'threads': lambda: psh.ThreadContext(2),
           'processes': lambda: psh.ProcessContext(2)}[kind]()
    running = ctx.alloc_per_worker((), np.int64, fill=0)
    most = ctx.alloc(1, np.int64, fill=0)

    def kernel(worker_id, index, value):
        running[worker_id] += 1
        most[0] = max(most[0], running[worker_id])
        time.sleep(1.2)
        running[worker_id] -= 1

    other = threading.Thread(target=ctx.map, args=(kernel, range(ctx.num_workers)))
    other.start()
    ctx.map(kernel, range(ctx.num_workers))
    other.join()
    assert most[0] == 1, 'two kernels ran at once under one worker id'


def test_a_map_from_a_thread_a_kernel_starts_and_waits_for_runs_as_that_kernels_worker(any_ctx):
    import concurrent.futures
    seen = any_ctx.alloc((any_ctx.num_workers, 2), np.int64, fill=-1)

    def inner(worker_id, index, value):
        seen[value, 1] = worker_id

    def kernel(worker_id, index, value):
        seen[worker_id, 0] = worker_id
        thread = threading.Thread(target=any_ctx.map, args=(inner, [worker_id]))
        thread.start()
        thread.join()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a pool started inside the kernel too
            pool.submit(any_ctx.map, inner, [worker_id]).result()

    any_ctx.map(kernel, range(any_ctx.num_workers))
    np.testing.assert_array_equal(seen[:, 1], seen[:, 0])
