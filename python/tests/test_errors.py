"""What reaches the caller when workers fail: the kernel's own exception, the worker that raised it
and where; a WorkerError naming how a worker process died; KeyboardInterrupt on Ctrl-C; never a hang,
a crash of the interpreter or a process left behind."""

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import pasha as psh
from conftest import children_of_this_process, open_fds


class CustomError(Exception):
    """An exception type of the user's, with arguments of its own."""

    def __init__(self, code, detail):
        super().__init__(f'code {code}: {detail}')
        self.code = code


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError('no pickling')


def fail_at(index, exception):
    def kernel(worker_id, i, value):
        if i == index:
            raise exception

    return kernel


@pytest.mark.parametrize('index', [0, 500, 999])
def test_a_kernels_exception_reaches_the_caller_as_itself_with_worker_and_traceback(ctx, index):
    with pytest.raises(ValueError, match='bad value 7') as caught:
        ctx.map(fail_at(index, ValueError('bad value 7')), range(1000))
    owner = index * ctx.num_workers // 1000
    assert caught.value.worker_id == owner
    assert 'raise exception' in caught.value.worker_traceback
    assert any(f'worker {owner}' in note for note in caught.value.__notes__)


def test_exceptions_of_the_users_own_types_keep_their_type_and_attributes(ctx):
    with pytest.raises(CustomError, match='code 3: not ready') as caught:
        ctx.map(fail_at(1, CustomError(3, 'not ready')), range(10))
    assert caught.value.code == 3


def test_an_exception_that_cannot_be_pickled_is_rebuilt_from_its_type_or_named(any_ctx):
    with pytest.raises((Unpicklable, psh.WorkerError), match='cannot cross') as caught:
        any_ctx.map(fail_at(0, Unpicklable('cannot cross')), range(4))
    assert caught.value.worker_id == 0


def test_the_lowest_failed_worker_is_reported(ctx):
    # Every worker reaches its first element before any raises (a worker that sees the map cancelled
    # before its first element has not failed): each marks its arrival and waits for the others.
    arrived = ctx.alloc(shape=ctx.num_workers, dtype=np.int32, fill=0)

    def every_worker_fails(worker_id, index, value):
        arrived[worker_id] = 1
        deadline = time.monotonic() + 10
        while not arrived.all() and time.monotonic() < deadline:
            time.sleep(0.001)
        raise RuntimeError(f'worker {worker_id}')

    with pytest.raises(RuntimeError) as caught:
        ctx.map(every_worker_fails, range(100))
    assert str(caught.value).split('\n')[0] == f'worker {caught.value.worker_id}'
    assert caught.value.worker_id == 0


@pytest.mark.parametrize('how, expected', [
    (lambda: os._exit(3), 'exited with status 3'),
    (lambda: os.kill(os.getpid(), signal.SIGKILL), 'SIGKILL'),
    (lambda: os.kill(os.getpid(), signal.SIGSEGV), 'SIGSEGV'),
], ids=['exit', 'sigkill', 'sigsegv'])
def test_a_worker_process_that_dies_is_a_worker_error_naming_how_within_seconds(how, expected):
    ctx = psh.ProcessContext(3)
    before = open_fds()

    def kernel(worker_id, index, value):
        if worker_id == 1:
            how()

    start = time.monotonic()
    with pytest.raises(psh.WorkerError, match=expected) as caught:
        ctx.map(kernel, range(30))
    assert time.monotonic() - start < 10
    assert caught.value.worker_id == 1
    ctx.map(lambda *args: None, range(30))  # usable again
    ctx.wait_for_exited_workers()
    assert children_of_this_process() == []
    assert open_fds() == before


def test_a_failure_stops_the_other_workers_early(any_ctx):
    done = any_ctx.alloc(any_ctx.num_workers, np.int64, fill=0)

    def kernel(worker_id, index, value):
        if index == 0:
            raise ValueError('first')
        time.sleep(0.001)
        done[worker_id] += 1

    start = time.monotonic()
    with pytest.raises(ValueError):
        any_ctx.map(kernel, range(2000 * any_ctx.num_workers))
    assert time.monotonic() - start < 10
    assert done[0] == 0
    if any_ctx.num_workers > 1:
        assert done.sum() < 2000 * (any_ctx.num_workers - 1), 'the others ran their whole shares'


def test_exceptions_in_the_functors_own_iterate_are_raised_too(any_ctx):
    class Broken(psh.functor.Functor):
        def split(self, num_workers):
            return [0, 1]

        def iterate(self, share):
            yield share, share
            raise LookupError(f'share {share} is broken')

    with pytest.raises(LookupError, match='is broken'):
        any_ctx.map(lambda *args: None, Broken())


def run_script(source, *, interrupt_in_a_kernel=False, timeout=60, unbuffered=None):
    """Runs `source` in a fresh interpreter with this pasha; returns (returncode, stdout, stderr).
    `unbuffered`: run it with (True) or without (False) PYTHONUNBUFFERED, or as this one runs."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    if unbuffered is not None:
        env.pop('PYTHONUNBUFFERED', None)
        if unbuffered:
            env['PYTHONUNBUFFERED'] = '1'
    process = subprocess.Popen([sys.executable, '-c', textwrap.dedent(source)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, errors='replace', env=env)
    if interrupt_in_a_kernel:
        # Wait until a kernel runs (the script's kernel says so), then interrupt the map.
        line = process.stdout.readline()
        assert line.startswith('in a kernel'), line + process.stderr.read()
        process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f'the script hung: {out[-2000:]}{err[-2000:]}') from None
    return process.returncode, out, err


@pytest.mark.parametrize('kind', ['serial', 'threads', 'processes'])
def test_ctrl_c_during_a_map_raises_keyboard_interrupt_and_leaves_no_process_behind(kind):
    code, out, err = run_script(f'''
        import os, time, sys
        import pasha as psh
        ctx = psh.{ {'serial': 'SerialContext()', 'threads': 'ThreadContext(2)', 'processes': 'ProcessContext(2)'}[kind] }
        def kernel(worker_id, index, value):
            if index == 0:
                os.write(1, b'in a kernel\\n')
            time.sleep(0.05)
        try:
            ctx.map(kernel, range(100000))
        except KeyboardInterrupt:
            children = open('/proc/self/task/%d/children' % os.getpid()).read().split()
            print('interrupted; children:', children, flush=True)
            sys.exit(0)
        print('not interrupted', flush=True)
    ''', interrupt_in_a_kernel=True)
    assert code == 0, err
    assert 'interrupted; children: []' in out, out + err


def test_an_exception_in_a_worker_process_does_not_print_a_second_traceback(capfd):
    ctx = psh.ProcessContext(2)
    with pytest.raises(ValueError):
        ctx.map(fail_at(0, ValueError('once')), range(4))
    assert 'Traceback' not in capfd.readouterr().err


def test_rebuild_falls_back_to_worker_error_for_a_description_it_cannot_read():
    from pasha import _errors
    exc = _errors.rebuild(b'not a pickle', 2, 'processes', 'pkg.Type', 'oops', 'pasha: worker 2 failed: oops')
    assert isinstance(exc, psh.WorkerError) and exc.worker_id == 2
    payload = _errors.capture(ValueError('x' * 100000), 2000)
    assert len(payload) <= 2000
    assert isinstance(_errors.rebuild(payload, 0, 'processes', '', '', ''), ValueError)
    assert pickle.loads(pickle.dumps(psh.WorkerError('m', 1, 'signal'))).args == ('m',)


def test_an_exceptions_chain_reaches_the_caller_with_it(ctx):
    def kernel(worker_id, index, value):
        if index == 0:
            try:
                {}['missing']
            except KeyError as key_error:
                try:
                    raise ValueError('outer') from key_error
                except ValueError:
                    raise RuntimeError('while handling')

    with pytest.raises(RuntimeError, match='while handling') as caught:
        ctx.map(kernel, range(4))
    context = caught.value.__context__
    assert isinstance(context, ValueError) and str(context) == 'outer'
    assert isinstance(context.__cause__, KeyError) and context.__cause__.args == ('missing',)
    assert context.__suppress_context__, 'raise ... from: the cause is shown, not the context'


@pytest.mark.parametrize('use_default_context', [False, True], ids=['ProcessContext', 'default context'])
def test_a_file_written_with_h5py_can_be_reopened_after_a_process_map(tmp_path, use_default_context):
    import h5py
    previous = psh.get_default_context()
    psh.set_default_context('processes', num_workers=2)
    ctx = psh if use_default_context else psh.ProcessContext(2)
    path = tmp_path / 'out.h5'
    try:
        for _ in range(10):
            with h5py.File(path, 'w') as f:  # HDF5 locks the file while it is open
                f['x'] = np.arange(4)
                ctx.map(lambda worker_id, index, value: bytearray(32 << 20), range(2))  # slow exits
            with h5py.File(path, 'r') as f:  # fails if a worker still holds the file it inherited
                assert list(f['x'][:]) == [0, 1, 2, 3]
        assert children_of_this_process() == []
    finally:
        psh.set_default_context(previous)


@pytest.mark.parametrize('doing', ['sleeping', 'computing', 'starting_maps'])
@pytest.mark.parametrize('kind', ['serial', 'threads', 'processes'])
def test_the_interpreter_exits_cleanly_while_a_daemon_thread_is_inside_a_map(kind, doing, tmp_path):
    # The daemon thread's map is under way (every worker has run a kernel) when the main thread ends:
    # its kernels sleep, compute in Python, or it keeps starting small maps (forking, for processes).
    pids = tmp_path / 'worker_pids'
    code, out, err = run_script(f'''
        import os, sys, threading, time
        import numpy as np
        import pasha as psh
        ctx = psh.{ {'serial': 'SerialContext()', 'threads': 'ThreadContext(2)', 'processes': 'ProcessContext(2)'}[kind] }
        running = ctx.alloc(ctx.num_workers, np.int64, fill=0)
        def kernel(worker_id, index, value):
            if not running[worker_id]:
                with open({str(pids)!r}, 'a') as f:
                    f.write(f'{{os.getpid()}}\\n')
                running[worker_id] = 1
            if {doing!r} == 'sleeping':
                time.sleep(0.01)
            elif {doing!r} == 'computing':
                sum(range(10000))
        def maps():
            if {doing!r} == 'starting_maps':
                while True:
                    ctx.map(kernel, range(ctx.num_workers))
            ctx.map(kernel, range(10 ** 6))
        threading.Thread(target=maps, daemon=True).start()
        deadline = time.monotonic() + 60
        while not running.all() and time.monotonic() < deadline:
            time.sleep(0.001)
        print('exiting', flush=True)
    ''')
    assert code == 0, err
    assert 'exiting' in out
    assert 'terminate' not in err and 'FATAL' not in err and 'Fatal' not in err, err
    workers = {int(pid) for pid in pids.read_text().split()} - {os.getpid()}
    deadline = time.monotonic() + 20
    while workers and time.monotonic() < deadline:
        workers = {pid for pid in workers if os.path.exists(f'/proc/{pid}') and
                   open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[0] != 'Z'}
        time.sleep(0.05)
    assert not workers, f'worker processes outlived the interpreter: {workers}'


def test_exceptions_too_large_or_odd_to_describe_still_reach_the_caller(any_ctx):
    # A type name no description can hold, a message cut inside a multi-byte character, a type that
    # takes no notes: each reaches the caller, as itself where it can be rebuilt, else a WorkerError.
    huge_name = type('H' * 70000, (Exception,), {})
    with pytest.raises((huge_name, psh.WorkerError)):
        any_ctx.map(fail_at(1, huge_name('too long a name')), range(4))
    with pytest.raises(ValueError) as caught:
        any_ctx.map(fail_at(1, ValueError('€' * 1500)), range(4))
    assert str(caught.value).startswith('€€€') and caught.value.worker_id is not None

    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Frozen(Exception):
        code: int

    with pytest.raises((Frozen, psh.WorkerError)) as caught:
        any_ctx.map(fail_at(1, Frozen(42)), range(4))
    if not isinstance(any_ctx, psh.ProcessContext):
        assert isinstance(caught.value, Frozen) and caught.value.code == 42


@pytest.mark.parametrize('unbuffered', [False, True], ids=['buffered', 'unbuffered'])
def test_workers_print_and_log_whole_lines_while_the_callers_threads_print_and_log_too(unbuffered):
    # Forks happen while other threads of the caller hold stdout's and stderr's locks (they print and
    # log all along): each worker still gets streams it can write to, and each line arrives whole.
    code, out, err = run_script('''
        import logging, sys, threading
        import pasha as psh
        sys.stdout.reconfigure(line_buffering=True)  # the caller's own lines whole too
        logging.basicConfig(level=logging.INFO, format='%(message)s')
        log = logging.getLogger('probe')
        stop = threading.Event()
        # One writer per stream in the caller: CPython's text streams are not safe for several.
        def printing():  # one write a line (print writes each of its arguments on its own)
            while not stop.is_set():
                sys.stdout.write('caller line of several words\\n')
        def logging_():
            while not stop.is_set():
                log.info('caller log line')
        def kernel(worker_id, index, value):
            print('worker', index, 'prints', 'a', 'line')
            log.info('worker %d logs a line', index)
        def maps():
            ctx = psh.ProcessContext(2)
            for _ in range(15):
                ctx.map(kernel, range(4))
        chatters = [threading.Thread(target=printing), threading.Thread(target=logging_)]
        mappers = [threading.Thread(target=maps) for _ in range(4)]
        for thread in chatters + mappers:
            thread.start()
        for thread in mappers:
            thread.join()
        stop.set()
        for thread in chatters:
            thread.join()
        print('done', flush=True)
    ''', timeout=120, unbuffered=unbuffered)
    assert code == 0, err
    assert out.rstrip().endswith('done')
    whole_out = {'caller line of several words', 'done'} | {f'worker {i} prints a line' for i in range(4)}
    whole_err = {'caller log line'} | {f'worker {i} logs a line' for i in range(4)}
    assert set(out.splitlines()) <= whole_out, set(out.splitlines()) - whole_out
    assert set(err.splitlines()) <= whole_err, set(err.splitlines()) - whole_err
    assert out.count('worker 3 prints a line') == 4 * 15 and err.count('worker 3 logs a line') == 4 * 15


def test_a_long_chain_raised_from_its_context_arrives_whole():
    def chain(depth):  # raise ... from the exception being handled: each link's cause is its context
        if depth == 0:
            raise KeyError('x' * 200)
        try:
            chain(depth - 1)
        except Exception as error:
            raise ValueError(f'level {depth} ' + 'y' * 200) from error

    def kernel(worker_id, index, value):
        if index == 1:
            chain(7)

    with pytest.raises(ValueError, match='level 7') as caught:
        psh.ProcessContext(2).map(kernel, range(2))
    depth, link = 0, caught.value
    while link.__cause__ is not None:
        assert link.__context__ is link.__cause__, 'one object, as raised'
        depth, link = depth + 1, link.__cause__
    assert depth == 7 and isinstance(link, KeyError)


def test_what_the_caller_printed_before_a_process_map_comes_before_what_its_workers_print(tmp_path):
    out_file = tmp_path / 'out.txt'
    code, out, err = run_script(f'''
        import sys
        import pasha as psh
        sys.stdout = open({str(out_file)!r}, 'w')  # block-buffered, as a file is
        print('before the map')
        psh.ProcessContext(2).map(lambda w, i, v: print('worker line', i), range(2))
        print('after the map')
        sys.stdout.close()
    ''', unbuffered=False)
    assert code == 0, err
    lines = out_file.read_text().splitlines()
    assert lines[0] == 'before the map' and lines[-1] == 'after the map', lines
