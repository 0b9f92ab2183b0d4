"""The contexts every test of the pasha package runs against, and probes of this process."""

import os

import pytest

import pasha as psh

# One, two, an odd count, and more workers than this 2-core machine has cores.
CONTEXTS = {
    'serial': lambda: psh.SerialContext(),
    'threads_1': lambda: psh.ThreadContext(1),
    'threads_3': lambda: psh.ThreadContext(3),
    'processes_1': lambda: psh.ProcessContext(1),
    'processes_2': lambda: psh.ProcessContext(2),
    'processes_7': lambda: psh.ProcessContext(7),
}

# One of each kind, for slower tests.
ONE_OF_EACH = {
    'serial': lambda: psh.SerialContext(),
    'threads': lambda: psh.ThreadContext(3),
    'processes': lambda: psh.ProcessContext(3),
}


def pytest_report_header(config):
    """Which pasha the tests run against (the build tree's, or an installed one)."""
    return f'pasha {psh.__version__} from {os.path.dirname(psh.__file__)}'


@pytest.fixture(params=list(CONTEXTS), ids=list(CONTEXTS))
def ctx(request):
    return CONTEXTS[request.param]()


@pytest.fixture(params=list(ONE_OF_EACH), ids=list(ONE_OF_EACH))
def any_ctx(request):
    return ONE_OF_EACH[request.param]()


def children_of_this_process():
    """The pids of this process's children (zombies included)."""
    children = []
    for task in os.listdir('/proc/self/task'):
        with open(f'/proc/self/task/{task}/children') as f:
            children += [int(pid) for pid in f.read().split()]
    return children


def open_fds():
    return len(os.listdir('/proc/self/fd'))


def mappings():
    """(begin, end, path) of each of this process's mappings (path '' for anonymous memory)."""
    with open('/proc/self/maps') as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            begin, end = (int(bound, 16) for bound in fields[0].split('-'))
            yield begin, end, fields[5].strip() if len(fields) > 5 else ''


def mapped_bytes(address, size):
    """How many bytes of [address, address + size) this process has mapped."""
    return sum(max(0, min(end, address + size) - max(begin, address)) for begin, end, _ in mappings())


def mapping_at(address):
    """The path of what this process has mapped at `address` ('' for anonymous memory), or None where
    nothing is mapped."""
    return next((path for begin, end, path in mappings() if begin <= address < end), None)


def make_run_tool():
    """The synthetic-run writer (//tools/xfel:make_run): $PASHA_MAKE_RUN (set by the Bazel test), or
    the one this workspace's last build made."""
    tool = os.environ.get('PASHA_MAKE_RUN')
    if tool:
        return os.path.abspath(tool)
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(here, '..', '..', 'bazel-bin', 'tools', 'xfel', 'make_run'),):
        if os.path.exists(candidate):
            return candidate
    raise RuntimeError('the tests need //tools/xfel:make_run: set PASHA_MAKE_RUN to its path '
                       '(tools/bazel build //tools/xfel:make_run; tools/bazel info bazel-bin)')


def write_run(directory, *args):
    """Writes a synthetic run (functors/xfel/testing/make_run.h) into `directory`; returns it."""
    import subprocess
    os.makedirs(directory, exist_ok=True)
    subprocess.run([make_run_tool(), str(directory), *args], check=True, stdout=subprocess.DEVNULL)
    return str(directory)
