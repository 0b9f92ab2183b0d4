"""pasha as pip installs it: the wheel the build backend (python/build_backend) makes of this build's
package, installed into fresh venvs of Debian's Python. (`.ci/run` also builds it from a clean clone
through Bazel, for every CPython 3.9-3.13 here.)"""

import base64
import csv
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

RUNFILES = Path(os.environ['TEST_SRCDIR']) / os.environ['TEST_WORKSPACE']
DEBIAN_PYTHON = '/usr/bin/python3'

def readme_quick_guide():
    """The README's first Python example (section Python), checking its result and saying which pasha ran."""
    readme = (RUNFILES / 'README.md').read_text()
    python_section = readme[readme.index('## Python'):]
    example = python_section.split('```python\n')[1].split('```')[0]
    return example + 'np.testing.assert_allclose(outp, 3 * inp)\nprint(psh.__file__)\n'



def run(*command, check=True, **kwargs):
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f'{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}')
    return result


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    """A checkout's files the backend needs, and this build's package staged as //python:install does."""
    root = tmp_path_factory.mktemp('checkout')
    for name in ('pyproject.toml', 'README.md', 'python/build_backend/pasha_build_backend.py'):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(RUNFILES / name, root / name)
    shutil.copytree(RUNFILES / 'python/pasha', root / 'python/pasha', ignore=shutil.ignore_patterns('_pasha.so'))
    staged = tmp_path_factory.mktemp('staged')
    shutil.copytree(RUNFILES / 'python/pasha', staged / 'pasha')
    shutil.copyfile(RUNFILES.parent / 'python_headers' / 'interpreter.json', staged / 'pasha-build.json')
    return root, staged


@pytest.fixture(scope='module')
def environment(project, tmp_path_factory):
    """The environment of pip and the backend: offline, and the staged package instead of Bazel."""
    home = tmp_path_factory.mktemp('home')
    caller = {name: value for name, value in os.environ.items() if not name.startswith('PYTHON')}
    return dict(caller, HOME=str(home), PASHA_PREBUILT_PACKAGE=str(project[1]), PIP_NO_INDEX='1',
                PIP_DISABLE_PIP_VERSION_CHECK='1', PIP_NO_CACHE_DIR='1', PYTHONDONTWRITEBYTECODE='1')


@pytest.fixture(scope='module')
def wheel(project, environment, tmp_path_factory):
    out = tmp_path_factory.mktemp('wheels')
    run(DEBIAN_PYTHON, '-m', 'pip', 'wheel', '--no-deps', '-w', out, project[0], env=environment)
    wheels = list(out.glob('*.whl'))
    assert len(wheels) == 1, wheels
    return wheels[0]


def venv(path, environment, system_site_packages=True):
    run(DEBIAN_PYTHON, '-m', 'venv', *(['--system-site-packages'] if system_site_packages else []), path,
        env=environment)
    return path / 'bin'


def fake_extra_pasha_wheel(directory):
    """A wheel as pip installed EXtra-pasha 0.1.2 from PyPI: distribution `pasha`, import name `pasha`,
    with a module this pasha does not have (pasha/shm_array.py)."""
    files = {'pasha/__init__.py': b"__version__ = '0.1.2'\n", 'pasha/shm_array.py': b'# EXtra-pasha\n',
             'pasha-0.1.2.dist-info/METADATA': b'Metadata-Version: 2.1\nName: pasha\nVersion: 0.1.2\n',
             'pasha-0.1.2.dist-info/WHEEL': b'Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n'
                                            b'Tag: py3-none-any\n'}
    record = [f'{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()},'
              f'{len(data)}' for name, data in files.items()] + ['pasha-0.1.2.dist-info/RECORD,,']
    files['pasha-0.1.2.dist-info/RECORD'] = ('\n'.join(record) + '\n').encode()
    path = directory / 'pasha-0.1.2-py3-none-any.whl'
    with zipfile.ZipFile(path, 'w') as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def site_packages(bin_dir):
    return Path(run(bin_dir / 'python', '-c', 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
                .stdout.strip())


def test_the_wheel_is_tagged_for_this_interpreter_and_records_every_file_it_holds(wheel):
    tag = 'cp%d%d' % sys.version_info[:2]
    assert wheel.name == f'pasha-4.0.0-{tag}-{tag}-linux_x86_64.whl'
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        record = list(csv.reader(archive.read('pasha-4.0.0.dist-info/RECORD').decode().splitlines()))
        assert sorted(row[0] for row in record) == sorted(names)
        for name, digest, size in record:
            if name.endswith('RECORD'):
                continue
            data = archive.read(name)
            assert digest == 'sha256=' + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
            assert int(size) == len(data)
        assert 'pasha/_pasha' + sysconfig.get_config_var('EXT_SUFFIX') in names
        assert 'pasha/py.typed' in names and 'pasha/xfel/lsxfel.py' in names
        assert not [name for name in names if 'staged-by' in name or 'pasha-build' in name]
        metadata = archive.read('pasha-4.0.0.dist-info/METADATA').decode()
        assert 'Name: pasha\nVersion: 4.0.0\n' in metadata and 'Requires-Dist: numpy\n' in metadata
        assert 'Requires-Python: >=3.9\n' in metadata
        assert archive.read('pasha-4.0.0.dist-info/entry_points.txt').decode() == (
            '[console_scripts]\nlsxfel = pasha.xfel.lsxfel:main\n')
        assert f'Tag: {tag}-{tag}-linux_x86_64\n' in archive.read('pasha-4.0.0.dist-info/WHEEL').decode()


def test_pip_installs_the_wheel_into_a_venv_where_the_quick_guide_runs(wheel, environment, tmp_path):
    bin_dir = venv(tmp_path / 'venv', environment)
    run(bin_dir / 'pip', 'install', wheel, env=environment)
    ran = run(bin_dir / 'python', '-c', readme_quick_guide(), env=environment, cwd=tmp_path)
    assert ran.stdout.strip() == str(site_packages(bin_dir) / 'pasha' / '__init__.py')
    versions = run(bin_dir / 'python', '-c', 'import importlib.metadata as m, pasha; '
                   'print(m.version("pasha"), pasha.__version__)', env=environment, cwd=tmp_path)
    assert versions.stdout.split() == ['4.0.0', '4.0.0']
    assert 'pasha' in run(bin_dir / 'pip', 'list', env=environment).stdout.split()


def test_lsxfel_is_a_console_script(wheel, environment, tmp_path):
    bin_dir = venv(tmp_path / 'venv', environment)
    run(bin_dir / 'pip', 'install', wheel, env=environment)
    usage = run(bin_dir / 'lsxfel', '--help', env=environment)
    assert usage.stdout.startswith('usage: lsxfel RUN_DIRECTORY|FILE.h5')
    run(RUNFILES / os.environ['PASHA_MAKE_RUN'], tmp_path / 'run', '--trains', '8', '--image', '4x4')
    listed = run(bin_dir / 'lsxfel', tmp_path / 'run', '--check', env=environment)
    assert ' files, 8 trains' in listed.stdout.splitlines()[0], listed.stdout
    assert run(bin_dir / 'lsxfel', env=environment, check=False).returncode == 2


def test_installing_over_extra_pasha_replaces_it_and_uninstall_leaves_nothing(wheel, environment, tmp_path):
    bin_dir = venv(tmp_path / 'venv', environment)
    site = site_packages(bin_dir)
    before = set(site.iterdir()) | set((bin_dir).iterdir())
    run(bin_dir / 'pip', 'install', '--no-deps', fake_extra_pasha_wheel(tmp_path), env=environment)
    assert (site / 'pasha' / 'shm_array.py').is_file()
    installed = run(bin_dir / 'pip', 'install', wheel, env=environment)
    assert 'Successfully uninstalled pasha-0.1.2' in installed.stdout
    assert not (site / 'pasha' / 'shm_array.py').exists() and not (site / 'pasha-0.1.2.dist-info').exists()
    assert run(bin_dir / 'python', '-c', 'import pasha; print(pasha.__version__)', env=environment,
               cwd=tmp_path).stdout.strip() == '4.0.0'
    run(bin_dir / 'pip', 'uninstall', '-y', 'pasha', env=environment)
    after = set(site.iterdir()) | set((bin_dir).iterdir())
    assert after == before, sorted(map(str, after ^ before))


def test_without_numpy_import_pasha_is_an_import_error_that_names_numpy(wheel, environment, tmp_path):
    bin_dir = venv(tmp_path / 'venv', environment, system_site_packages=False)
    run(bin_dir / 'pip', 'install', '--no-deps', wheel, env=environment)
    result = run(bin_dir / 'python', '-c', 'import pasha', env=environment, cwd=tmp_path, check=False)
    assert result.returncode == 1  # an exception, not a crash
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('ImportError: pasha needs numpy, which this Python') and 'pip install numpy' in last
    # The extension module itself loads: only numpy is missing.
    loaded = run(bin_dir / 'python', '-c', 'import importlib.util, sys; '
                 'spec = importlib.util.find_spec("pasha._pasha") if False else None; '
                 'import importlib.machinery as m, pathlib, sysconfig; '
                 'path = next(pathlib.Path(sysconfig.get_paths()["platlib"], "pasha").glob("_pasha.*.so")); '
                 'spec = importlib.util.spec_from_file_location("pasha._pasha", path); '
                 'module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); '
                 'print(module.__name__)', env=environment, cwd=tmp_path)
    assert loaded.stdout.strip() == 'pasha._pasha'


def test_an_editable_install_imports_the_checkouts_sources(project, environment, tmp_path):
    root, _ = project
    bin_dir = venv(tmp_path / 'venv', environment)
    run(bin_dir / 'pip', 'install', '--no-deps', '-e', root, env=environment)
    where = run(bin_dir / 'python', '-c', 'import pasha; print(pasha.__file__)', env=environment, cwd=tmp_path)
    assert Path(where.stdout.strip()).resolve() == root / 'python' / 'pasha' / '__init__.py'
    assert list((root / 'python' / 'pasha').glob('_pasha.cpython-*.so'))
    # Only pasha: not the checkout's other folders of python/.
    assert run(bin_dir / 'python', '-c', 'import build_backend', env=environment, cwd=tmp_path,
               check=False).returncode == 1
    run(bin_dir / 'python', '-c', readme_quick_guide(), env=environment, cwd=tmp_path)


def test_the_source_distribution_holds_the_checkout_without_build_outputs(project, environment, tmp_path):
    root, _ = project
    (root / 'bazel-out').mkdir(exist_ok=True)
    (root / 'bazel-out' / 'junk').write_text('')
    (root / '.venv').mkdir(exist_ok=True)
    (root / '.venv' / 'junk.py').write_text('')
    (root / '.env').write_text('secret')
    sys.path.insert(0, str(root / 'python' / 'build_backend'))
    try:
        import pasha_build_backend as backend
        name = backend.build_sdist(str(tmp_path))
    finally:
        sys.path.pop(0)
    import tarfile
    with tarfile.open(tmp_path / name) as sdist:
        names = sdist.getnames()
    assert name == 'pasha-4.0.0.tar.gz'
    assert 'pasha-4.0.0/pyproject.toml' in names and 'pasha-4.0.0/PKG-INFO' in names
    assert 'pasha-4.0.0/python/pasha/__init__.py' in names
    assert 'pasha-4.0.0/python/pasha/.staged-by-pasha-install' not in names
    assert not [n for n in names if '/bazel-out' in n or '/.venv' in n or '/.env' in n or n.endswith('.so')]


def test_the_backends_own_reader_of_pyproject_agrees_with_tomllib():
    sys.path.insert(0, str(RUNFILES / 'python' / 'build_backend'))
    try:
        import pasha_build_backend as backend
    finally:
        sys.path.pop(0)
    import tomllib
    text = (RUNFILES / 'pyproject.toml').read_text()
    assert backend._parse_toml_subset(text) == tomllib.loads(text)
