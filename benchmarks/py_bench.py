"""pasha from Python, against what a Python user writes by hand and against the same work in C++.

    tools/bazel run //benchmarks:py_bench [-- --quick] [--skip-xfel] [--skip-mpi]

Every comparison runs its contenders in turn, repetition after repetition, in this one process (or,
for C++ and MPI, in processes started for them), and reports medians and their ratio: pasha's time
over the other's (below 1: pasha is faster). Results are checked to agree before they are timed.

  1. Fixed cost: a ProcessContext(2) map of 1,000 trivial kernels vs multiprocessing.Pool(2).map of
     the same (EXtra-pasha's mechanism: a fork pool per map).
  2. Per element: a SerialContext map of a trivial kernel over 10^6 floats vs a plain Python loop
     calling the same function.
  3. A numpy-heavy kernel per row of a 2-d array: ProcessContext(2) vs SerialContext.
  4. European XFEL: the sum of each train's camera images (1024x1024 uint16, about 2 GB, page cache
     warm) with pasha.xfel on ProcessContext(2) vs an h5py loop reading train by train in one
     process, and vs pasha's C++ map of the same sum (//benchmarks:xfel_sum) on ProcessContext(2).
  5. MPI weak scaling: the same numpy work per rank on 1 and 2 ranks (mpirun), SerialContext each.
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


def trivial_for_pool(value):
    pass


def fixed_cost(repetitions):
    context = psh.ProcessContext(2)
    items = list(range(1000))
    fork = multiprocessing.get_context('fork')

    def pool_map():
        with fork.Pool(2) as pool:
            pool.map(trivial_for_pool, items)

    medians = median_times({'pasha ProcessContext(2).map': lambda: context.map(trivial, items),
                            'multiprocessing Pool(2).map (a pool per map)': pool_map}, repetitions)
    report('1. fixed cost: 1,000 trivial kernels on 2 worker processes', medians, 'pasha ProcessContext(2).map',
           'multiprocessing Pool(2).map (a pool per map)', 0.2, 'process map vs multiprocessing.Pool, fixed cost')


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

        def cxx_map():
            out = subprocess.run([os.environ['PASHA_XFEL_SUM'], run_dir, '2', '1'], check=True, capture_output=True,
                                 text=True).stdout.split('\n')
            cxx_times.append(float(out[0]))
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
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='fewer repetitions and smaller inputs')
    parser.add_argument('--skip-xfel', action='store_true')
    parser.add_argument('--skip-mpi', action='store_true')
    parser.add_argument('--mpi-rank', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--solo-work', type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mpi_rank is not None:
        mpi_rank_main(args.mpi_rank)
        return
    if args.solo_work is not None:
        solo_work_main(args.solo_work)
        return
    repetitions = 5 if args.quick else 11
    say(f'pasha {psh.__version__} from Python: medians of {repetitions} repetitions, contenders side by side')
    fixed_cost(repetitions)
    per_element(repetitions, 200_000 if args.quick else 1_000_000)
    numpy_rows(repetitions, 64 if args.quick else 256)
    if not args.skip_xfel:
        xfel(3 if args.quick else 5, 200 if args.quick else 700)
    if not args.skip_mpi:
        mpi_weak_scaling(3 if args.quick else 5)
    say('\ntracked ratios')
    for what, ratio, target, note in RESULTS:
        higher = note == 'higher is better'
        met = ratio >= target if higher else ratio <= target
        say(f'  {what:52s} {ratio:6.2f}  target {">=" if higher else "<="} {target}  '
            f'{"met" if met else "MISSED"}')


if __name__ == '__main__':
    main()
