"""pasha.MpiContext from Python, under mpirun (python/BUILD.bazel runs it on 1, 2 and 4 ranks, and on
simulated nodes): every rank runs every test, in the same order, as SPMD code does. Only what every
rank sees alike is asserted, so that ranks never part ways in a collective."""

import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from mpi4py import MPI

import pasha as psh
from pasha.xfel import RunDirectory

COMM = MPI.COMM_WORLD
LOCALS = {
    'serial': lambda: psh.SerialContext(),
    'threads': lambda: psh.ThreadContext(2),
    'processes': lambda: psh.ProcessContext(2),
}

# Kept until the interpreter exits: pasha frees them then, collectively, before MPI finalises (a
# hang there would fail the test target).
_KEPT_UNTIL_EXIT = []


@pytest.fixture(params=list(LOCALS), ids=list(LOCALS))
def ctx(request):
    return psh.MpiContext(LOCALS[request.param]())


def test_the_context_spans_every_ranks_workers(ctx):
    assert ctx.num_ranks == COMM.size and ctx.rank == COMM.rank
    assert ctx.num_workers == COMM.allreduce(ctx.local_context.num_workers)
    firsts = COMM.allgather(ctx.first_worker)
    assert sorted(firsts) == firsts or ctx.num_nodes > 1  # ranks numbered node by node
    assert 1 <= ctx.num_nodes <= ctx.num_ranks


def test_index_aligned_and_per_worker_arrays_are_whole_on_every_rank(ctx):
    n = 1000
    out = ctx.alloc(shape=n, dtype=np.float64, fill=-1)
    worker_of = ctx.alloc(shape=n, dtype=np.int32, fill=-1)
    visits = ctx.alloc(shape=(), dtype=np.int64, per_worker=True, fill=0)

    def kernel(worker_id, index, value):
        out[index] = 3 * value
        worker_of[index] = worker_id
        visits[worker_id] += 1

    ctx.map(kernel, range(n))
    np.testing.assert_array_equal(out, 3 * np.arange(n))
    assert visits.sum() == n
    assert set(np.unique(worker_of)) == set(range(ctx.num_workers))
    # Every rank sees the same whole arrays.
    assert COMM.allreduce(int(out.sum()), op=MPI.MAX) == COMM.allreduce(int(out.sum()), op=MPI.MIN)


def test_rows_of_an_array_with_a_dynamic_schedule_are_visited_once(ctx):
    rows = np.arange(300 * 4, dtype=np.float64).reshape(300, 4)
    sums = ctx.alloc(shape=300, dtype=np.float64, fill=0)

    def kernel(worker_id, index, row):
        sums[index] += row.sum()

    ctx.map(kernel, rows, schedule='dynamic', chunk=7)
    np.testing.assert_array_equal(sums, rows.sum(axis=1))


def test_a_kernel_raising_on_one_rank_raises_on_every_rank_and_the_context_works_on(ctx):
    n = 200

    def kernel(worker_id, index, value):
        if index == n - 1:  # the last rank's
            raise ValueError(f'boom at {index}')

    with pytest.raises((ValueError, psh.WorkerError)) as caught:
        ctx.map(kernel, range(n))
    assert 'boom at 199' in str(caught.value)
    raised_here = isinstance(caught.value, ValueError)
    assert COMM.allreduce(int(raised_here)) >= 1
    if ctx.local_context.__class__ is psh.ProcessContext:
        # From a worker process the failure carries its description: every rank raises it as itself.
        assert raised_here, f'rank {COMM.rank} raised {caught.value!r}'
    out = ctx.alloc(shape=10, dtype=np.int64, fill=0)
    ctx.map(lambda w, i, v: out.__setitem__(i, v + 1), range(10))
    np.testing.assert_array_equal(out, np.arange(1, 11))


def test_ranks_that_map_collections_of_different_lengths_get_value_error(ctx):
    n = 10 + (ctx.rank if ctx.num_ranks > 1 else 0)
    if ctx.num_ranks > 1:
        with pytest.raises(ValueError, match='collection size'):
            ctx.map(lambda *args: None, range(n))
    else:
        ctx.map(lambda *args: None, range(n))


def camera_images_of_a_run(tmp_path_factory, trains):
    """The camera images of a synthetic run of `trains` trains, which rank 0 writes for every rank."""
    run_dir = None
    if COMM.rank == 0:
        run_dir = str(tmp_path_factory.mktemp('mpi_run'))
        subprocess.run([os.environ['PASHA_MAKE_RUN'], run_dir, '--trains', str(trains)], check=True,
                       stdout=subprocess.DEVNULL)
    run_dir = COMM.bcast(run_dir, root=0)
    return RunDirectory(run_dir)['FXE_XAD_GEC/CAM/CAMERA:daqOutput', 'data.image.pixels']


def test_xfel_trains_are_split_across_ranks(ctx, tmp_path_factory):
    kd = camera_images_of_a_run(tmp_path_factory, 48)
    sums = ctx.alloc(shape=len(kd.train_ids), dtype=np.float64, fill=-1)
    ranks = ctx.alloc(shape=len(kd.train_ids), dtype=np.int64, fill=-1)  # which rank read each train

    rank = COMM.rank  # (no MPI call in the kernel: it may run in a forked worker)

    def kernel(worker_id, index, train_id, data):
        sums[index] = 0 if data is None else data.sum(dtype=np.float64)
        ranks[index] = rank

    ctx.map(kernel, kd)
    expected = [0 if d is None else d.sum(dtype=np.float64) for _, d in kd.trains(include_empty=True)]
    np.testing.assert_array_equal(sums, expected)
    assert sorted(set(ranks.tolist())) == list(range(COMM.size)), 'every rank reads a part of the trains'
    assert (np.diff(ranks) >= 0).all(), 'each rank reads one run of consecutive trains, in rank order'


@numba.njit
def compiled_triple(worker_id, index, value, out, elements_per_worker):
    if value < 0:
        raise ValueError('a negative value')
    out[index] = 3 * value
    elements_per_worker[worker_id] += 1


@numba.njit
def compiled_train_sum(worker_id, index, train_id, data, sums):
    total = 0.0
    for x in data.ravel():
        total += x
    sums[index] = total


def test_a_compiled_kernel_maps_across_ranks_and_its_exception_reaches_every_rank(ctx, tmp_path_factory):
    data = np.arange(1000.0)
    out = ctx.alloc(shape=1000, dtype=np.float64, fill=0)
    per_worker = ctx.zeros_per_worker((), np.int64)
    ctx.map(compiled_triple, data, out, per_worker)
    np.testing.assert_array_equal(out, 3 * data)
    assert per_worker.sum() == 1000 and (per_worker > 0).all()
    data[999] = -1  # the last rank's
    with pytest.raises((ValueError, psh.WorkerError), match='a negative value'):
        ctx.map(compiled_triple, data, out, per_worker)
    kd = camera_images_of_a_run(tmp_path_factory, 24)
    sums = ctx.alloc(shape=len(kd.train_ids), dtype=np.float64, fill=-1)
    ctx.map(compiled_train_sum, kd, sums)
    expected = [0 if d is None else d.sum(dtype=np.float64) for _, d in kd.trains(include_empty=True)]
    np.testing.assert_array_equal(sums, expected)


def test_arrays_the_garbage_collector_frees_at_different_times_on_each_rank_never_hang(ctx):
    import gc

    class Holder:
        pass

    for _ in range(3):
        cycle = Holder()
        cycle.self = cycle
        cycle.array = ctx.alloc(shape=1000, dtype=np.float64, fill=1)
        del cycle
        if ctx.rank % 2 == 0:
            gc.collect()  # the array goes now here, at the next collection on other ranks
        out = ctx.alloc(shape=8, dtype=np.int64, fill=0)
        ctx.map(lambda w, i, v: out.__setitem__(i, v), range(8))
        np.testing.assert_array_equal(out, np.arange(8))
    gc.collect()


def test_contexts_and_arrays_still_alive_at_exit_are_freed_then(ctx):
    kept = ctx.alloc(shape=5, dtype=np.float64, fill=2)
    _KEPT_UNTIL_EXIT.append((ctx, kept))
    assert kept.sum() == 10


def test_a_local_context_of_the_wrong_kind_is_a_type_error():
    with pytest.raises(TypeError, match='local context'):
        psh.MpiContext(object())
    with pytest.raises(TypeError, match='communicator'):
        psh.MpiContext(psh.SerialContext(), comm='world')


@pytest.mark.parametrize('local, elements', [('serial', 'many'), ('threads', 'many'), ('processes', 'many'),
                                             ('processes', 'one long')])
def test_ctrl_c_on_one_rank_stops_every_ranks_workers_within_a_second(local, elements):
    # Worker processes are stopped wherever they are; serial and thread workers (Python code in this
    # process) at their next element, so their elements are short here.
    ctx = psh.MpiContext(LOCALS[local]())
    # The last rank (the only one, under one rank) is interrupted (SIGINT, as Ctrl-C under mpirun or srun
    # sends it) once its map runs;
    # every rank's shares would take 10 s. The interrupted rank raises KeyboardInterrupt, the others
    # a WorkerError naming it, all within seconds; the context then maps again.
    import signal
    import threading
    import time
    interrupted_rank = ctx.num_ranks - 1
    # Many short elements, or one long one per worker (the interrupt then comes with a rank's last).
    per_element = 0.05 if elements == 'many' else 10
    n = int(10 / per_element) * ctx.num_workers
    started = ctx.alloc(shape=ctx.num_workers, dtype=np.int64, per_worker=False, fill=0)

    def kernel(worker_id, index, value):
        started[worker_id] = 1
        time.sleep(per_element)

    if COMM.rank == interrupted_rank:
        def interrupt_once_running():
            first = ctx.first_worker
            while not started[first:first + ctx.local_context.num_workers].all():
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGINT)
        threading.Thread(target=interrupt_once_running, daemon=True).start()
    start = time.monotonic()
    with pytest.raises((KeyboardInterrupt, psh.WorkerError)) as caught:
        ctx.map(kernel, range(n))
    took = time.monotonic() - start
    if COMM.rank == interrupted_rank:
        assert isinstance(caught.value, KeyboardInterrupt), repr(caught.value)
    else:
        assert isinstance(caught.value, psh.WorkerError), repr(caught.value)
        assert f'rank {interrupted_rank}' in str(caught.value) or 'KeyboardInterrupt' in str(caught.value)
    assert took < 5, f'rank {COMM.rank} left the map after {took:.1f} s'
    out = ctx.alloc(shape=4, dtype=np.int64, fill=0)
    ctx.map(lambda w, i, v: out.__setitem__(i, v + 1), range(4))
    np.testing.assert_array_equal(out, [1, 2, 3, 4])
