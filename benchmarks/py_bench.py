"""pasha from Python, against what a Python user writes by hand and against the same work in C++.

    tools/bazel run //benchmarks:py_bench [-- --quick] [--skip-xfel] [--skip-mpi] [--only 6,7]

Every comparison runs its contenders in turn, repetition after repetition, in this one process (or,
for C++ and MPI, in processes started for them), and reports medians and their ratio: pasha's time
over the other's (below 1: pasha is faster). Results are checked to agree before they are timed.

  1. Fixed cost: a ProcessContext(2) map of 1,000 trivial kernels vs what EXtra-pasha does per map,
     written by hand: a fork multiprocessing.Pool(2) per map, with an initializer that hands out worker
     ids, starmap over the two shares, and the pool's exit (pasha's map also returns once its workers
     have exited: both sides time worker exit).
  2. Per element: a SerialContext map of a trivial kernel over 10^6 floats vs a plain Python loop
     calling the same function.
  3. A numpy-heavy kernel per row of a 2-d array: ProcessContext(2) vs SerialContext.
  4. European XFEL: the sum of each train's camera images (1024x1024 uint16, about 2 GB, page cache
     warm) with pasha.xfel on ProcessContext(2) vs an h5py loop reading train by train in one
     process, and vs pasha's C++ map of the same sum (//benchmarks:xfel_sum) on ProcessContext(2).
     Also the same sum with a compiled (numba) kernel, on ThreadContext(2) and ProcessContext(2), vs
     pasha's C++ map on the same context (each timed inside its own process: the maps only).
  5. MPI weak scaling: the same numpy work per rank on 1 and 2 ranks (mpirun), SerialContext each.
  6. Compiled kernels: out[i] = 3 * in[i] over 10^7 float64 with a numba.njit kernel on ThreadContext(1)
     and (2), vs pasha's C++ thread map of the same (//benchmarks:triple_map, timed inside its
     process), and how each scales from 1 to 2 workers.
  7. Allocation: 1 GiB (a float64 array of 1,024 rows) allocated and written once by a compiled kernel
     that fills each row, pasha's alloc vs numpy's np.empty (and alloc(fill=0) vs np.zeros), with the
     same map on the same context, in every context; warm (repeated in this process) and in a fresh
     process each time (the time of alloc plus map, measured inside it).
"""

import argparse
import glob
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numba
import numpy as np

import pasha as psh

CAMERA = 'FXE_XAD_GEC/CAM/CAMERA:daqOutput'
RESULTS = []  # (what, ratio, target, note)


def say(text=''):
    print(text, flush=True)


def median_times(contenders, repetitions):
    """{name: median seconds}: each contender once to warm up, then `repetitions` rounds in which each
    runs once, the first of each round rotating."""
    for run in contenders.values():
        run()
    times = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(repetitions):
        for k in range(len(names)):
            name = names[(k + r) % len(names)]
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def report(title, medians, pasha_name, other_name, target, what):
    say(f'\n{title}')
    for name, seconds in medians.items():
        say(f'  {name:48s} {seconds * 1e3:10.2f} ms')
    ratio = medians[pasha_name] / medians[other_name]
    say(f'  ratio {pasha_name} / {other_name}: {ratio:.2f} (target <= {target})')
    RESULTS.append((what, ratio, target, ''))


# --- 1. Fixed cost of a process map ---------------------------------------------------------------

def trivial(worker_id, index, value):
    pass


_worker_id = None


def _init_pool_worker(id_queue):
    """EXtra-pasha's pool initializer: each worker process takes its id from a queue."""
    global _worker_id
    _worker_id = id_queue.get()


def _run_pool_share(kernel, items, share):
    """EXtra-pasha's run_worker: the kernel over one share, with the worker's id."""
    for index in share:
        kernel(_worker_id, index, items[index])


def extra_pasha_style_map(fork, kernel, items, num_workers):
    """What EXtra-pasha's ProcessContext.map does, by hand: a pool per map (fork), worker ids through an
    initializer, starmap over even shares, and the pool's exit (terminate joins its workers)."""
    id_queue = fork.Queue()
    for worker_id in range(num_workers):
        id_queue.put(worker_id)
    bounds = np.linspace(0, len(items), num_workers + 1).astype(int)
    shares = [range(bounds[w], bounds[w + 1]) for w in range(num_workers)]
    with fork.Pool(num_workers, initializer=_init_pool_worker, initargs=(id_queue,)) as pool:
        pool.starmap(_run_pool_share, [(kernel, items, share) for share in shares])


def fixed_cost(repetitions):
    context = psh.ProcessContext(2)
    items = list(range(1000))
    fork = multiprocessing.get_context('fork')
    baseline = 'by hand: EXtra-pasha\'s Pool(2) per map, starmap'
    medians = median_times({'pasha ProcessContext(2).map': lambda: context.map(trivial, items),
                            baseline: lambda: extra_pasha_style_map(fork, trivial, items, 2)}, repetitions)
    report('1. fixed cost: 1,000 trivial kernels on 2 worker processes (both sides until the workers exited)',
           medians, 'pasha ProcessContext(2).map', baseline, 0.2, 'process map vs a Pool per map, fixed cost')


# --- 2. Per-element cost of a serial map ----------------------------------------------------------

def per_element(repetitions, n):
    context = psh.SerialContext()
    floats = [float(x) for x in range(n)]
    calls = [0]

    def kernel(worker_id, index, value):
        calls[0] += 1

    def plain_loop():
        for index, value in enumerate(floats):
            kernel(0, index, value)

    calls[0] = 0
    context.map(kernel, floats)
    assert calls[0] == n
    medians = median_times({'pasha SerialContext().map': lambda: context.map(kernel, floats),
                            'plain Python loop': plain_loop}, repetitions)
    report(f'2. per element: a trivial kernel over {n:,} floats', medians, 'pasha SerialContext().map',
           'plain Python loop', 1.5, 'serial map vs Python loop, per element')


# --- 3. numpy-heavy kernel per row ----------------------------------------------------------------

def numpy_rows(repetitions, rows):
    data = np.random.default_rng(1).standard_normal((rows, 1 << 15))
    serial, processes = psh.SerialContext(), psh.ProcessContext(2)
    out_serial = serial.alloc(shape=rows, dtype=np.float64)
    out_processes = processes.alloc(shape=rows, dtype=np.float64)

    def kernel_into(out):
        def kernel(worker_id, index, row):
            out[index] = np.abs(np.fft.rfft(row)).max() + np.sort(row)[len(row) // 2]
        return kernel

    serial_kernel, processes_kernel = kernel_into(out_serial), kernel_into(out_processes)
    serial.map(serial_kernel, data)
    processes.map(processes_kernel, data)
    np.testing.assert_allclose(out_serial, out_processes)
    medians = median_times({'pasha ProcessContext(2)': lambda: processes.map(processes_kernel, data),
                            'pasha SerialContext': lambda: serial.map(serial_kernel, data)}, repetitions)
    report(f'3. numpy per row (rfft and sort of {rows} rows of 32768 floats)', medians, 'pasha ProcessContext(2)',
           'pasha SerialContext', 0.6, 'numpy kernel per row, 2 processes vs serial')


# --- 4. European XFEL -----------------------------------------------------------------------------

def h5py_sums(run_dir, n):
    import h5py
    sums = np.zeros(n, dtype=np.uint64)
    i = 0
    for path in sorted(glob.glob(os.path.join(run_dir, '*.h5'))):
        with h5py.File(path, 'r') as f:
            ids = f['INDEX/trainId'][:]
            first = f[f'INDEX/{CAMERA}/data/first'][:]
            count = f[f'INDEX/{CAMERA}/data/count'][:]
            images = f[f'INSTRUMENT/{CAMERA}/data/image/pixels']
            for train_id, start, c in zip(ids, first, count):
                if train_id == 0:
                    continue
                sums[i] = images[start:start + c].sum() if c else 0
                i += 1
    return sums


def xfel(repetitions, trains):
    from pasha.xfel import RunDirectory
    run_dir = tempfile.mkdtemp(prefix='pasha_py_bench_')
    try:
        say(f'\n4. generating {trains} trains of 1024x1024 images...')
        subprocess.run([os.environ['PASHA_MAKE_RUN'], run_dir, '--trains', str(trains), '--image', '1024x1024',
                        '--da-per-file', '128', '--no-detector'], check=True, stdout=subprocess.DEVNULL)
        size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(run_dir, '*.h5')))
        images = RunDirectory(run_dir)[CAMERA, 'data.image.pixels']
        n = len(images.train_ids)
        context = psh.ProcessContext(2)
        sums = context.alloc(shape=n, dtype=np.uint64)

        def kernel(worker_id, index, train_id, data):
            sums[index] = 0 if data is None else data.sum()

        touched = context.alloc(shape=n, dtype=np.uint64)

        def touch_each_page(worker_id, index, train_id, data):
            # One value per 4 KiB page: what delivering the rows to Python costs, without numpy's sum.
            touched[index] = 0 if data is None else data.reshape(-1)[::2048].sum()

        cxx_times = []
        cxx_times_by_kind = {'threads': [], 'processes': []}

        def cxx_map(kind='processes', times=cxx_times):
            out = subprocess.run([os.environ['PASHA_XFEL_SUM'], run_dir, '2', '1', kind], check=True,
                                 capture_output=True, text=True).stdout.split('\n')
            times.append(float(out[0]))
            cxx_total[0] = int(out[1].split()[1])

        cxx_total = [0]
        reference = h5py_sums(run_dir, n)  # also warms the page cache
        context.map(kernel, images)
        cxx_map()
        assert (sums == reference).all(), 'pasha.xfel and h5py disagree'
        assert cxx_total[0] == int(reference.sum()), 'C++ and h5py disagree'
        cxx_times.clear()
        medians = median_times({'pasha.xfel, ProcessContext(2), numpy sum': lambda: context.map(kernel, images),
                                'h5py loop, one process, numpy sum': lambda: h5py_sums(run_dir, n),
                                'C++ map, ProcessContext(2) (process start)': cxx_map,
                                'pasha.xfel, ProcessContext(2), one value a page': lambda: context.map(
                                    touch_each_page, images)}, repetitions)
        # The C++ map's own time, measured inside its process (without starting it and opening the run).
        medians['C++ map, ProcessContext(2)'] = statistics.median(cxx_times[1:] or cxx_times)
        del medians['C++ map, ProcessContext(2) (process start)']
        say(f'\n4. European XFEL: per-train sum of {n} trains of camera images ({size / 1e9:.2f} GB, warm cache)')
        for name, seconds in medians.items():
            say(f'  {name:48s} {seconds * 1e3:10.2f} ms  {size / seconds / 1e9:6.2f} GB/s')
        python = medians['pasha.xfel, ProcessContext(2), numpy sum']
        for other, target, what in (('h5py loop, one process, numpy sum', 0.5, 'XFEL sum, pasha.xfel vs h5py loop'),
                                    ('C++ map, ProcessContext(2)', 1.3, 'XFEL sum, Python kernel vs C++ kernel')):
            ratio = python / medians[other]
            say(f'  ratio pasha.xfel / {other}: {ratio:.2f} (target <= {target})')
            RESULTS.append((what, ratio, target, ''))
        delivery = medians['pasha.xfel, ProcessContext(2), one value a page'] / medians['C++ map, ProcessContext(2)']
        say(f'  (delivering the rows to a Python kernel that reads one value a page, over the C++ map with its '
            f'sum: {delivery:.2f}; the rest is numpy\'s sum of uint16, slower than the C++ loop)')

        # A compiled kernel (numba) for the same sum, against the C++ map on the same kind of context.
        compiled_sums = {kind: psh.ThreadContext(2) if kind == 'threads' else psh.ProcessContext(2)
                         for kind in ('threads', 'processes')}
        outputs = {kind: ctx.alloc(shape=n, dtype=np.uint64) for kind, ctx in compiled_sums.items()}
        for kind, ctx in compiled_sums.items():
            ctx.map(compiled_train_sum, images, outputs[kind])
            assert (outputs[kind] == reference).all(), f'the compiled kernel on {kind} and h5py disagree'
        contenders = {}
        for kind, ctx in compiled_sums.items():
            contenders[f'compiled kernel, {kind}(2)'] = (lambda c=ctx, k=kind: c.map(compiled_train_sum, images,
                                                                                      outputs[k]))
            contenders[f'C++ map, {kind}(2) (process start)'] = (
                lambda k=kind: cxx_map(k, cxx_times_by_kind[k]))
        medians = median_times(contenders, repetitions)
        say(f'\n4b. the same sum with a compiled (numba) kernel, against the C++ map (its own time inside its '
            f'process)')
        for kind in ('threads', 'processes'):
            compiled_time = medians[f'compiled kernel, {kind}(2)']
            cxx_time = statistics.median(cxx_times_by_kind[kind][1:] or cxx_times_by_kind[kind])
            say(f'  compiled kernel, {kind}(2) {compiled_time * 1e3:10.2f} ms   C++ map, {kind}(2) '
                f'{cxx_time * 1e3:10.2f} ms')
            ratio = compiled_time / cxx_time
            say(f'  ratio compiled / C++ on {kind}: {ratio:.2f} (target <= 1.15)')
            RESULTS.append((f'XFEL sum, compiled kernel vs C++, {kind}', ratio, 1.15, ''))
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


@numba.njit
def compiled_train_sum(worker_id, index, train_id, data, sums):
    sums[index] = data.sum()


# --- 5. MPI weak scaling --------------------------------------------------------------------------

MPI_ELEMENTS_PER_RANK = 8000


def mpi_rank_main(repetitions):
    """In each rank (python3 py_bench.py --mpi-rank R): the median time of a map whose work per rank
    is constant, printed by rank 0."""
    from mpi4py import MPI
    context = psh.MpiContext(psh.SerialContext())
    n = MPI_ELEMENTS_PER_RANK * context.num_ranks
    out = context.alloc(shape=n, dtype=np.float64)
    x = np.linspace(0, 1, 1 << 12)

    def kernel(worker_id, index, value):
        # Every rank's share the same work (the cost of exp and sin depends on the value).
        out[index] = numpy_work(x, value % MPI_ELEMENTS_PER_RANK)

    times = []
    for r in range(repetitions + 1):
        MPI.COMM_WORLD.Barrier()
        start = time.perf_counter()
        context.map(kernel, range(n))
        times.append(time.perf_counter() - start)
    if MPI.COMM_WORLD.rank == 0:
        print(f'seconds {statistics.median(times[1:])}', flush=True)


def numpy_work(x, value):
    return np.sin(x * value).sum() + np.exp(-x * value).sum()


def solo_work_main(repetitions):
    """In each rank (python3 py_bench.py --solo-work R): one rank's share of mpi_rank_main's work,
    without pasha, started together on every rank as the maps are; rank 0 prints the median time of
    the slowest rank."""
    from mpi4py import MPI
    x = np.linspace(0, 1, 1 << 12)
    times = []
    for r in range(repetitions + 1):
        MPI.COMM_WORLD.Barrier()
        start = time.perf_counter()
        for value in range(MPI_ELEMENTS_PER_RANK):
            numpy_work(x, value)
        times.append(MPI.COMM_WORLD.allreduce(time.perf_counter() - start, op=MPI.MAX))
    if MPI.COMM_WORLD.rank == 0:
        print(f'seconds {statistics.median(times[1:])}', flush=True)


def mpi_weak_scaling(repetitions):
    if shutil.which('mpirun') is None:
        say('\n5. MPI: mpirun is missing (tools/bazel installs openmpi-bin); skipped')
        return
    env = dict(os.environ, OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1')

    def median_under_mpirun(ranks, mode):
        out = subprocess.run(['mpirun', '--allow-run-as-root', '--oversubscribe', '--mca', 'btl', 'self,vader,tcp',
                              '--mca', 'btl_tcp_if_include', 'lo', '-np', str(ranks), sys.executable,
                              os.path.abspath(__file__), mode, str(repetitions)],
                             check=True, capture_output=True, text=True, env=env).stdout
        return float(next(line for line in out.splitlines() if line.startswith('seconds')).split()[1])

    seconds = {ranks: median_under_mpirun(ranks, '--mpi-rank') for ranks in (1, 2)}
    efficiency = seconds[1] / seconds[2]
    cores = len(os.sched_getaffinity(0))
    # What the machine itself gives: the same numpy work on one rank, then on two started together.
    one, two = (median_under_mpirun(ranks, '--solo-work') for ranks in (1, 2))
    say(f'\n5. MPI weak scaling: {MPI_ELEMENTS_PER_RANK} elements per rank (numpy on 4096 floats each, in cache), SerialContext on each rank')
    say(f'  1 rank  {seconds[1] * 1e3:10.2f} ms')
    say(f'  2 ranks {seconds[2] * 1e3:10.2f} ms')
    say(f'  efficiency 1 -> 2 ranks: {efficiency:.2f} (target >= 0.9 where there are cores for both; '
        f'this machine has {cores})')
    say(f'  the machine without pasha: the same work on 1 rank {one * 1e3:.2f} ms, on 2 ranks started '
        f'together {two * 1e3:.2f} ms (the slower), efficiency {one / two:.2f}')
    RESULTS.append(('MPI weak scaling 1 -> 2 ranks (efficiency)', efficiency, 0.9, 'higher is better'))


# --- 6. Compiled kernels ---------------------------------------------------------------------------

@numba.njit
def compiled_triple(worker_id, index, value, out):
    out[index] = 3 * value


def cxx_triple_map_times(n, workers, repetitions, kind='threads'):
    """The C++ map's own times (inside its process) for out[i] = 3 * in[i] over n doubles."""
    out = subprocess.run([os.environ['PASHA_TRIPLE_MAP'], str(n), str(workers), str(repetitions), kind], check=True,
                         capture_output=True, text=True).stdout.split('\n')
    assert float(out[repetitions].split()[1]) == 3 * (n - 1) * n / 2, 'the C++ map computed something else'
    return [float(line) for line in out[:repetitions]]


def compiled_kernels(repetitions, n):
    inp = np.arange(n, dtype=np.float64)
    medians = {}
    for workers in (1, 2):
        ctx = psh.ThreadContext(workers)
        out = ctx.alloc(like=inp, fill=0)
        ctx.map(compiled_triple, inp, out)
        assert out.sum() == 3 * (n - 1) * n / 2
        compiled_times, cxx_times = [], []
        for _ in range(repetitions):  # side by side: one of each per round
            start = time.perf_counter()
            ctx.map(compiled_triple, inp, out)
            compiled_times.append(time.perf_counter() - start)
            cxx_times += cxx_triple_map_times(n, workers, 1)
        medians[f'compiled kernel, ThreadContext({workers})'] = statistics.median(compiled_times)
        medians[f'C++ map, ThreadContext({workers})'] = statistics.median(cxx_times)
    say(f'\n6. compiled kernels: out[i] = 3 * in[i] over {n:,} float64 (the maps only; C++ timed inside its process)')
    for name, seconds in medians.items():
        say(f'  {name:48s} {seconds * 1e3:10.2f} ms')
    ratio = medians['compiled kernel, ThreadContext(2)'] / medians['C++ map, ThreadContext(2)']
    say(f'  ratio compiled / C++, 2 threads: {ratio:.2f} (target <= 1.2)')
    RESULTS.append(('thread map, compiled kernel vs C++', ratio, 1.2, ''))
    compiled_speedup = medians['compiled kernel, ThreadContext(1)'] / medians['compiled kernel, ThreadContext(2)']
    cxx_speedup = medians['C++ map, ThreadContext(1)'] / medians['C++ map, ThreadContext(2)']
    say(f'  1 -> 2 threads: compiled {compiled_speedup:.2f}x, C++ {cxx_speedup:.2f}x (this map is bound by '
        f'memory bandwidth)')
    RESULTS.append(('thread scaling 1 -> 2, compiled / C++', compiled_speedup / cxx_speedup, 0.9,
                    'higher is better'))


# --- 7. Allocation ---------------------------------------------------------------------------------

ALLOC_ROWS = 1024
ALLOC_ROW_LENGTH = (1 << 30) // 8 // ALLOC_ROWS  # 1 GiB of float64


@numba.njit
def fill_row(worker_id, index, row):
    for k in range(row.shape[0]):
        row[k] = index


ALLOC_CONTEXTS = {'serial': lambda: psh.SerialContext(), 'threads': lambda: psh.ThreadContext(2),
                  'processes': lambda: psh.ProcessContext(2)}
ALLOC_CONTENDERS = {
    'pasha alloc': lambda ctx: ctx.alloc(shape=(ALLOC_ROWS, ALLOC_ROW_LENGTH)),
    'np.empty': lambda ctx: np.empty((ALLOC_ROWS, ALLOC_ROW_LENGTH)),
    'pasha alloc(fill=0)': lambda ctx: ctx.alloc(shape=(ALLOC_ROWS, ALLOC_ROW_LENGTH), fill=0),
    'np.zeros': lambda ctx: np.zeros((ALLOC_ROWS, ALLOC_ROW_LENGTH)),
}


def page_faults():
    """This machine's page faults so far: (all, transparent huge pages) (/proc/vmstat)."""
    counts = {}
    with open('/proc/vmstat') as vmstat:
        for line in vmstat:
            name, value = line.split()
            counts[name] = int(value)
    return counts.get('pgfault', 0), counts.get('thp_fault_alloc', 0)


def alloc_and_map(ctx, contender, faults=None):
    """Seconds of allocating 1 GiB with `contender` and writing it with one map on `ctx` (and in
    `faults`, the page faults it took, huge pages apart)."""
    before = page_faults()
    start = time.perf_counter()
    array = ALLOC_CONTENDERS[contender](ctx)
    ctx.map(fill_row, array)
    seconds = time.perf_counter() - start
    if faults is not None:
        faults.append(tuple(after - earlier for after, earlier in zip(page_faults(), before)))
    del array
    return seconds


def alloc_once_main(kind, contender):
    """In a fresh process (--alloc-once): prints the seconds of one alloc_and_map (numba's entry for the
    kernel compiled first, on a small array)."""
    ctx = ALLOC_CONTEXTS[kind]()
    ctx.map(fill_row, np.empty((2, 4)))
    print(alloc_and_map(ctx, contender))


def allocation(repetitions):
    settings = []
    for name in ('enabled', 'shmem_enabled'):
        try:
            with open(f'/sys/kernel/mm/transparent_hugepage/{name}') as setting:
                settings.append(f'{name} {setting.read().split("[")[1].split("]")[0]}')
        except (OSError, IndexError):
            settings.append(f'{name} unknown')
    say(f'\n7. allocation: 1 GiB allocated and written by one map of a compiled kernel (a row each); transparent '
        f'huge pages: {", ".join(settings)}')
    for kind, make in ALLOC_CONTEXTS.items():
        ctx = make()
        ctx.map(fill_row, np.empty((2, 4)))
        warm = {contender: [] for contender in ALLOC_CONTENDERS}
        fresh = {contender: [] for contender in ALLOC_CONTENDERS}
        faults = {contender: [] for contender in ALLOC_CONTENDERS}
        names = list(ALLOC_CONTENDERS)
        for r in range(repetitions):  # each round in another order: the first after a free is no one's
            for k in range(len(names)):
                contender = names[(k + r) % len(names)]
                warm[contender].append(alloc_and_map(ctx, contender, faults[contender]))
        for r in range(repetitions):
            for k in range(len(names)):
                contender = names[(k + r) % len(names)]
                out = subprocess.run([sys.executable, __file__, '--alloc-once', kind, contender], check=True,
                                     capture_output=True, text=True).stdout
                fresh[contender].append(float(out))
        say(f'  {kind:9s} page faults per map (all, of them huge pages): ' + '  '.join(
            f'{c} {statistics.median(f[0] for f in faults[c]):.0f}, {statistics.median(f[1] for f in faults[c]):.0f}'
            for c in names))
        for label, times in (('warm', warm), ('fresh process', fresh)):
            medians = {contender: statistics.median(t) for contender, t in times.items()}
            say(f'  {kind:9s} {label:13s} ' + '  '.join(f'{c} {m * 1e3:7.1f} ms' for c, m in medians.items()))
            for pasha_name, numpy_name in (('pasha alloc', 'np.empty'), ('pasha alloc(fill=0)', 'np.zeros')):
                ratio = medians[pasha_name] / medians[numpy_name]
                RESULTS.append((f'1 GiB {pasha_name} + map vs {numpy_name}, {kind}, {label}', ratio, 1.0, ''))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='fewer repetitions and smaller inputs')
    parser.add_argument('--skip-xfel', action='store_true')
    parser.add_argument('--skip-mpi', action='store_true')
    parser.add_argument('--mpi-rank', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--solo-work', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--alloc-once', nargs=2, help=argparse.SUPPRESS)
    parser.add_argument('--only', help='run only these sections (comma-separated numbers, e.g. 6,7)')
    args = parser.parse_args()
    if args.alloc_once is not None:
        alloc_once_main(*args.alloc_once)
        return
    if args.mpi_rank is not None:
        mpi_rank_main(args.mpi_rank)
        return
    if args.solo_work is not None:
        solo_work_main(args.solo_work)
        return
    repetitions = 5 if args.quick else 11
    say(f'pasha {psh.__version__} from Python: medians of {repetitions} repetitions, contenders side by side')
    only = set(args.only.split(',')) if args.only else set('1234567')
    if '1' in only:
        fixed_cost(repetitions)
    if '2' in only:
        per_element(repetitions, 200_000 if args.quick else 1_000_000)
    if '3' in only:
        numpy_rows(repetitions, 64 if args.quick else 256)
    if '4' in only and not args.skip_xfel:
        xfel(3 if args.quick else 5, 200 if args.quick else 700)
    if '5' in only and not args.skip_mpi:
        mpi_weak_scaling(3 if args.quick else 5)
    if '6' in only:
        compiled_kernels(3 * repetitions, 10_000_000)
    if '7' in only:
        allocation(3 if args.quick else 7)
    say('\ntracked ratios')
    for what, ratio, target, note in RESULTS:
        higher = note == 'higher is better'
        met = ratio >= target if higher else ratio <= target
        say(f'  {what:52s} {ratio:6.2f}  target {">=" if higher else "<="} {target}  '
            f'{"met" if met else "MISSED"}')


if __name__ == '__main__':
    main()
