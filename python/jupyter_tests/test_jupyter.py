"""pasha in Jupyter: notebooks run by a real ipykernel (nbclient, jupyter_client), with the `pasha` that
the kernel's Python imports (this build's, or the installed wheel's in CI)."""

import json
import os
import re
import signal
import sys
import textwrap
import time

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient


# The kernel the notebooks run on: ipykernel on the Python running these tests (the venv's, where pasha
# is installed), not whichever Python a system-wide "python3" kernel names.
KERNEL = 'pasha-tests'


@pytest.fixture(autouse=True)
def jupyter_environment(tmp_path, monkeypatch):
    """Jupyter's files in this test's folder, with the kernel KERNEL; ipykernel sends the output of file
    descriptors 1 and 2 to the notebook as it does for users (it does not while PYTEST_CURRENT_TEST is
    set)."""
    for name in ('JUPYTER_RUNTIME_DIR', 'JUPYTER_DATA_DIR', 'JUPYTER_CONFIG_DIR', 'IPYTHONDIR'):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    spec = tmp_path / 'jupyter_data_dir' / 'kernels' / KERNEL
    spec.mkdir(parents=True)
    (spec / 'kernel.json').write_text(json.dumps({
        'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
        'display_name': 'pasha tests', 'language': 'python'}))
    monkeypatch.delenv('PYTEST_CURRENT_TEST', raising=False)
    monkeypatch.chdir(tmp_path)


def notebook(*cells, raises=()):
    """A notebook of code cells; the cells numbered in `raises` are expected to raise."""
    nb = nbformat.v4.new_notebook()
    for number, source in enumerate(cells):
        cell = nbformat.v4.new_code_cell(textwrap.dedent(source))
        if number in raises:
            cell.metadata['tags'] = ['raises-exception']
        nb.cells.append(cell)
    return nb


def execute(nb):
    NotebookClient(nb, timeout=240, kernel_name=KERNEL, allow_errors=False).execute()
    return nb


def stream_text(cell, name='stdout'):
    return ''.join(output.text for output in cell.outputs if output.output_type == 'stream' and output.name == name)


def test_a_notebook_maps_in_every_context_and_gets_its_results():
    nb = execute(notebook('''
        import numpy as np
        import pasha as psh
        results = {}
        for context in (psh.SerialContext(), psh.ThreadContext(num_workers=2), psh.ProcessContext(num_workers=3),
                        'default'):
            ctx = psh.get_default_context() if context == 'default' else context
            inp = np.arange(1000, dtype=np.float64)
            outp = ctx.alloc(like=inp, fill=0)
            def triple(worker_id, index, value):
                outp[index] = 3 * value
            ctx.map(triple, inp)
            assert np.array_equal(outp, 3 * inp), type(ctx).__name__
            results[type(ctx).__name__] = float(outp.sum())
        print(sorted(results.items()))
    '''))
    assert stream_text(nb.cells[0]).strip() == (
        "[('ProcessContext', 1498500.0), ('SerialContext', 1498500.0), ('ThreadContext', 1498500.0)]")


def test_what_process_workers_print_shows_in_the_cell_as_whole_lines():
    nb = execute(notebook('''
        import sys
        import pasha as psh
        print('before the map')
        def talk(worker_id, index, value):
            print('worker', worker_id, 'says', index, 'x' * 300, 'end')
            print('to stderr', index, file=sys.stderr)
        psh.ProcessContext(num_workers=4).map(talk, range(200))
        print('after the map')
    '''))
    out = stream_text(nb.cells[0]).splitlines()
    assert out[0] == 'before the map' and out[-1] == 'after the map'
    said = out[1:-1]
    assert len(said) == 200
    pattern = re.compile(r'worker [0-3] says (\d+) ' + 'x' * 300 + ' end')
    assert all(pattern.fullmatch(line) for line in said), [line for line in said if not pattern.fullmatch(line)][:3]
    assert sorted(int(pattern.fullmatch(line).group(1)) for line in said) == list(range(200))
    assert sorted(stream_text(nb.cells[0], 'stderr').splitlines()) == sorted(f'to stderr {i}' for i in range(200))


@pytest.mark.parametrize('context', ['SerialContext()', 'ThreadContext(num_workers=2)',
                                     'ProcessContext(num_workers=2)'])
def test_a_kernels_exception_shows_in_the_cell_with_its_type_and_message(context):
    nb = execute(notebook(f'''
        import pasha as psh
        class DetectorError(Exception):
            pass
        def kernel(worker_id, index, value):
            if index == 7:
                raise DetectorError(f'module {{index}} is saturated')
        psh.{context}.map(kernel, range(20))
    ''', '''
        psh.{context}.map(lambda worker_id, index, value: None, range(20))
        print('mapped again')
    '''.replace('{context}', context), raises={0}))
    error = [output for output in nb.cells[0].outputs if output.output_type == 'error']
    assert len(error) == 1
    assert error[0].ename == 'DetectorError'
    assert error[0].evalue == 'module 7 is saturated'
    assert stream_text(nb.cells[1]).strip() == 'mapped again'


def alive(pid):
    """Whether `pid` is a process that has not exited (a zombie has)."""
    try:
        with open(f'/proc/{pid}/stat') as stat:
            return stat.read().rpartition(')')[2].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def run_cell(client, code, timeout=120):
    """Runs `code`; returns (reply content, stdout text). Raises if the kernel does not answer in time."""
    return client.execute_interactive(textwrap.dedent(code), timeout=timeout, store_history=False,
                                      output_hook=lambda message: None)['content']


@pytest.mark.parametrize('context', ['ProcessContext(num_workers=3)', 'get_default_context()',
                                     'ThreadContext(num_workers=2)'])
def test_interrupting_the_kernel_stops_a_long_map_leaves_no_worker_and_the_next_cell_maps(tmp_path, context):
    started = tmp_path / 'started'
    started.mkdir()
    manager, client = start_new_kernel(kernel_name=KERNEL)
    try:
        reply = run_cell(client, f'''
            import os, time
            import numpy as np
            import pasha as psh
            ctx = psh.{context}
            def slow(worker_id, index, value):
                with open(os.path.join({str(started)!r}, str(worker_id)), 'w') as file:
                    file.write(str(os.getpid()))
                time.sleep(0.2)
            with open(os.path.join({str(started)!r}, 'workers'), 'w') as file:
                file.write(str(ctx.num_workers))
        ''')
        assert reply['status'] == 'ok', reply
        num_workers = int((started / 'workers').read_text())
        (started / 'workers').unlink()
        # (stop_on_error=False: the kernel runs the cells sent after this one, as a user's next cell.)
        message_id = client.execute('ctx.map(slow, range(100000))', stop_on_error=False)
        # The map runs once every worker has written its file.
        deadline = time.monotonic() + 60
        while len(os.listdir(started)) < num_workers:
            assert time.monotonic() < deadline, 'the map did not start'
            time.sleep(0.01)
        manager.interrupt_kernel()
        while True:
            reply = client.get_shell_msg(timeout=60)
            if reply['parent_header'].get('msg_id') == message_id:
                break
        assert reply['content']['status'] == 'error'
        assert reply['content']['ename'] == 'KeyboardInterrupt'
        workers = [int((started / name).read_text()) for name in os.listdir(started)]
        workers = [pid for pid in workers if pid != manager.provisioner.pid]
        assert len(workers) == (num_workers if 'Thread' not in context else 0)
        assert not [pid for pid in workers if alive(pid)]
        reply = run_cell(client, '''
            inp = np.arange(100.0)
            outp = ctx.alloc(like=inp)
            ctx.map(lambda worker_id, index, value: outp.__setitem__(index, 2 * value), inp)
            assert np.array_equal(outp, 2 * inp)
        ''')
        assert reply['status'] == 'ok', reply
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
