"""pasha's PEP 517 build backend: `pip install .`, `pip wheel .`, `pip install -e .`, `python -m build`.

Why a backend of its own, in the tree (pyproject.toml's `backend-path`), needing only the standard
library: pip builds in an isolated environment, into which it would download a backend such as
setuptools or scikit-build from a package index, and pasha must build offline on machines that reach
none. pasha's one build is Bazel's (tools/bazel), so the backend asks Bazel for the package and only
packs what Bazel staged into a wheel (PEP 427, with its metadata from pyproject.toml, PEP 621).

The extension module is built for the interpreter that runs this backend, which is the one running
pip (or that of the venv pip installs into): its C headers, tags and EXT_SUFFIX, through
`--repo_env=PASHA_PYTHON=` (tools/python_configure.bzl).

PASHA_PREBUILT_PACKAGE=DIR skips Bazel and packs DIR/pasha, as `tools/bazel run //python:install --
DIR` staged it, with DIR/pasha-build.json (what the packaging tests do, inside a Bazel test).

tools/bazel installs only the Debian packages the build needs when the backend runs it
(PASHA_PACKAGES_FOR=build).
"""

from __future__ import annotations

import ast
import base64
import contextlib
import fcntl
import hashlib
import json
import io
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_SOURCE = ROOT / 'python' / 'pasha'
EXTENSION_AS_BUILT = '_pasha.so'  # what Bazel names it; the wheel gives it the interpreter's EXT_SUFFIX


# --- pyproject.toml ----------------------------------------------------------------------------------

def _parse_toml_subset(text: str) -> dict:
    """pyproject.toml's tables, for Python < 3.11 (no tomllib): [tables], `key = value` with strings,
    booleans and (multi-line) arrays of strings, whole-line comments. Enough for this repository's
    pyproject.toml, whose tests check it against tomllib."""
    document: dict = {}
    table = document
    pending = ''
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith('#')):
            continue
        if not pending and stripped.startswith('['):
            table = document
            for part in stripped.strip('[]').split('.'):
                table = table.setdefault(part.strip(), {})
            continue
        pending += ' ' + stripped
        key, _, value = pending.partition('=')
        value = value.strip()
        if value.count('[') > value.count(']'):
            continue  # an array that goes on on the next line
        pending = ''
        value = re.sub(r'\b(true|false)\b', lambda m: m.group(1).title(), value)
        try:
            table[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError) as error:
            raise ValueError(f'pyproject.toml: cannot read {line.strip()!r} without tomllib') from error
    if pending:
        raise ValueError('pyproject.toml: an array does not end')
    return document


def read_pyproject(path: Path = ROOT / 'pyproject.toml') -> dict:
    """pyproject.toml as a dict (tomllib where Python has it)."""
    text = path.read_text(encoding='utf-8')
    try:
        import tomllib
    except ImportError:
        return _parse_toml_subset(text)
    return tomllib.loads(text)


def version() -> str:
    """The version, from python/pasha/_version.py (its one place)."""
    text = (PACKAGE_SOURCE / '_version.py').read_text(encoding='utf-8')
    found = re.search(r"^__version__ = '([^']+)'$", text, re.M)
    if not found:
        raise RuntimeError('python/pasha/_version.py has no `__version__ = \'...\'` line')
    return found.group(1)


# --- metadata ----------------------------------------------------------------------------------------

def _normalized_name(name: str) -> str:
    return re.sub(r'[-_.]+', '_', name).lower()


def _dist_info_name() -> str:
    return f'{_normalized_name(read_pyproject()["project"]["name"])}-{version()}.dist-info'


def metadata() -> str:
    """The METADATA file (core metadata 2.1) from pyproject.toml's [project]."""
    project = read_pyproject()['project']
    lines = ['Metadata-Version: 2.1', f'Name: {project["name"]}', f'Version: {version()}']
    if 'description' in project:
        lines.append(f'Summary: {project["description"]}')
    if 'requires-python' in project:
        lines.append(f'Requires-Python: {project["requires-python"]}')
    lines += [f'Classifier: {c}' for c in project.get('classifiers', [])]
    lines += [f'Requires-Dist: {d}' for d in project.get('dependencies', [])]
    for extra, requirements in project.get('optional-dependencies', {}).items():
        lines.append(f'Provides-Extra: {extra}')
        lines += [f'Requires-Dist: {r}; extra == "{extra}"' for r in requirements]
    readme = project.get('readme')
    body = ''
    if readme:
        lines.append('Description-Content-Type: text/markdown')
        body = (ROOT / readme).read_text(encoding='utf-8')
    return '\n'.join(lines) + '\n\n' + body


def entry_points() -> str:
    """entry_points.txt: the console scripts of [project.scripts] (lsxfel)."""
    scripts = read_pyproject()['project'].get('scripts', {})
    return '[console_scripts]\n' + ''.join(f'{name} = {target}\n' for name, target in scripts.items())


def wheel_tag() -> str:
    """This interpreter's wheel tag, e.g. cp311-cp311-linux_x86_64 (the wheel holds a CPython extension
    module built against this interpreter's ABI, for this platform)."""
    if sys.implementation.name != 'cpython':
        raise RuntimeError(f'pasha builds its extension module for CPython only, not {sys.implementation.name}')
    python = 'cp%d%d' % sys.version_info[:2]
    soabi = sysconfig.get_config_var('SOABI') or ''  # cpython-311-x86_64-linux-gnu, cpython-313t-...
    found = re.match(r'cpython-(\d+)([a-z]*)', soabi)
    abi = f'cp{found.group(1)}{found.group(2)}' if found else python
    platform = re.sub(r'[-.]', '_', sysconfig.get_platform())
    return f'{python}-{abi}-{platform}'


def _write_dist_info(directory: Path) -> str:
    dist_info = directory / _dist_info_name()
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / 'METADATA').write_text(metadata(), encoding='utf-8')
    (dist_info / 'entry_points.txt').write_text(entry_points(), encoding='utf-8')
    (dist_info / 'WHEEL').write_text(
        'Wheel-Version: 1.0\nGenerator: pasha_build_backend\nRoot-Is-Purelib: false\n'
        f'Tag: {wheel_tag()}\n', encoding='utf-8')
    return dist_info.name


# --- building ----------------------------------------------------------------------------------------

def _bazel_environment() -> dict:
    """The environment Bazel runs in: the caller's, without what pip's isolated build adds (its
    PYTHONPATH and scripts on PATH would reach the interpreter that python_configure.bzl asks)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(('PYTHON', 'PIP_', 'PEP517'))}
    path = [p for p in environment.get('PATH', '/usr/bin:/bin').split(os.pathsep) if 'pip-build-env' not in p]
    environment['PATH'] = os.pathsep.join(path)
    environment['PASHA_PACKAGES_FOR'] = 'build'
    return environment


def interpreter_identity() -> str:
    """What the extension module depends on in this interpreter: version, ABI, headers and the real
    executable (a venv made again at the same path, for another Python, differs here)."""
    base = getattr(sys, '_base_executable', None) or sys.executable
    return '|'.join([sys.version.split()[0], sysconfig.get_config_var('SOABI') or '',
                     sysconfig.get_paths()['include'], os.path.realpath(base)])


@contextlib.contextmanager
def _one_build_at_a_time():
    """Holds a lock on this checkout's package builds: two at once, for two interpreters, would
    rebuild the one extension module under each other."""
    lock_path = Path(tempfile.gettempdir()) / f'pasha-build-{hashlib.sha256(bytes(ROOT)).hexdigest()[:16]}.lock'
    with open(lock_path, 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _bazel(*arguments: str) -> None:
    command = [str(ROOT / 'tools' / 'bazel'), *arguments]
    print('pasha_build_backend:', ' '.join(command), flush=True)
    result = subprocess.run(command, cwd=ROOT, env=_bazel_environment(), stdout=sys.stderr)
    if result.returncode != 0:
        raise RuntimeError(f'pasha_build_backend: the Bazel build failed (exit {result.returncode}): '
                           f'{" ".join(command)}')


def _check_built_for_this_interpreter(built_for: Path) -> None:
    found = json.loads(built_for.read_text())
    expected = {'version': '%d.%d' % sys.version_info[:2], 'ext_suffix': sysconfig.get_config_var('EXT_SUFFIX')}
    if any(found.get(key) != value for key, value in expected.items()):
        raise RuntimeError(f'pasha_build_backend: the extension module was built for {found.get("python")} '
                           f'(Python {found.get("version")}), not for {sys.executable} (Python {expected["version"]})')


def stage_package(target: Path) -> Path:
    """Puts the package built for this interpreter in target/pasha (Bazel's, or PASHA_PREBUILT_PACKAGE's);
    returns it."""
    prebuilt = os.environ.get('PASHA_PREBUILT_PACKAGE')
    if prebuilt:
        shutil.copytree(Path(prebuilt), target, dirs_exist_ok=True, ignore=shutil.ignore_patterns('__pycache__'))
    else:
        with _one_build_at_a_time():
            _bazel('run', '--color=no', '--curses=no', f'--repo_env=PASHA_PYTHON={sys.executable}',
                   f'--repo_env=PASHA_PYTHON_ID={interpreter_identity()}', '//python:install', '--', str(target))
            if (ROOT / 'PKG-INFO').exists():
                # An unpacked source distribution (python -m build, pip install pasha-*.tar.gz): a Bazel
                # server of its own, which would outlive the folder, stops here.
                _bazel('shutdown')
    built_for = target / 'pasha-build.json'
    _check_built_for_this_interpreter(built_for)
    built_for.unlink()
    package = target / 'pasha'
    (package / '.staged-by-pasha-install').unlink(missing_ok=True)
    extension = package / EXTENSION_AS_BUILT
    if not extension.is_file():
        raise RuntimeError(f'pasha_build_backend: no extension module in {package}')
    extension.rename(package / ('_pasha' + sysconfig.get_config_var('EXT_SUFFIX')))
    return package


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
    return f'{name},sha256={digest},{len(data)}'


def _zip_wheel(wheel_path: Path, files: dict, dist_info: str) -> None:
    """Writes `files` (archive name -> bytes, executable flag) and their RECORD into a wheel."""
    timestamp = (1980, 1, 1, 0, 0, 0)
    record = [_record_line(name, data) for name, (data, _) in files.items()]
    record.append(f'{dist_info}/RECORD,,')
    files = dict(files)
    files[f'{dist_info}/RECORD'] = (('\n'.join(record) + '\n').encode(), False)
    with zipfile.ZipFile(wheel_path, 'w', zipfile.ZIP_DEFLATED) as wheel:
        for name, (data, executable) in sorted(files.items(), key=lambda item: item[0].startswith(dist_info)):
            info = zipfile.ZipInfo(name, timestamp)
            info.external_attr = (0o755 if executable else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)


def _files_under(directory: Path) -> dict:
    files = {}
    for path in sorted(directory.rglob('*')):
        if path.is_file() and '__pycache__' not in path.parts:
            files[path.relative_to(directory).as_posix()] = (path.read_bytes(), os.access(path, os.X_OK))
    return files


def _wheel_name() -> str:
    return f'{_normalized_name(read_pyproject()["project"]["name"])}-{version()}-{wheel_tag()}.whl'


# --- PEP 517 / 660 hooks -----------------------------------------------------------------------------

def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    return _write_dist_info(Path(metadata_directory))


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    """The wheel: the package as Bazel built it for this interpreter, with its metadata and RECORD."""
    with tempfile.TemporaryDirectory(prefix='pasha-wheel-') as scratch:
        scratch = Path(scratch)
        stage_package(scratch / 'root')
        dist_info = _write_dist_info(scratch / 'root')
        files = _files_under(scratch / 'root')
        wheel_path = Path(wheel_directory) / _wheel_name()
        _zip_wheel(wheel_path, files, dist_info)
    return wheel_path.name


# What an editable install puts on sys.path: a folder whose only entry is a link to python/pasha.
EDITABLE_PATH = ROOT / 'python' / '.editable'


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """An editable install: python/pasha of this checkout on sys.path (a .pth file naming
    python/.editable, which holds a link to it and nothing else), with the extension module Bazel built
    put beside its sources (python/pasha/_pasha.cpython-*.so; both ignored by git). Edits of the Python
    files show at once; after a change to the C++, run `pip install -e .` again."""
    with tempfile.TemporaryDirectory(prefix='pasha-editable-') as scratch:
        package = stage_package(Path(scratch))
        for built in package.glob('_pasha.*.so'):
            shutil.copyfile(built, PACKAGE_SOURCE / built.name)
        root = Path(scratch) / 'root'
        dist_info = _write_dist_info(root)
        files = _files_under(root)
    EDITABLE_PATH.mkdir(exist_ok=True)
    if not (EDITABLE_PATH / 'pasha').is_symlink():
        (EDITABLE_PATH / 'pasha').symlink_to(Path('..') / 'pasha')
    files['pasha_editable.pth'] = ((str(EDITABLE_PATH) + '\n').encode(), False)
    wheel_path = Path(wheel_directory) / _wheel_name()
    _zip_wheel(wheel_path, files, dist_info)
    return wheel_path.name


# What a source distribution leaves out of a folder that is not a git checkout: hidden files and
# folders (but .bazelrc, .bazelignore, .ci, .gitignore), Bazel's outputs, built and cached files.
_NOT_IN_SDIST = re.compile(r'(^|/)(\.(?!bazelrc$|bazelignore$|ci$|gitignore$)[^/]*|bazel-[^/]*|__pycache__)(/|$)'
                           r'|^python/pasha/_pasha\.[^/]*\.so$|\.pyc$')


def _sdist_files() -> list:
    """The checkout's files: git's (tracked, and new ones it does not ignore) in a git checkout."""
    if (ROOT / '.git').exists():
        listed = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=ROOT,
                                capture_output=True, check=True).stdout.decode().split('\0')
        return sorted(name for name in listed if name and (ROOT / name).is_file() and not (ROOT / name).is_symlink())
    found = []
    for directory, subdirectories, names in os.walk(ROOT):
        relative_directory = Path(directory).relative_to(ROOT).as_posix()
        prefix = '' if relative_directory == '.' else relative_directory + '/'
        subdirectories[:] = sorted(d for d in subdirectories if not _NOT_IN_SDIST.search(f'{prefix}{d}/'))
        for name in sorted(names):
            if not _NOT_IN_SDIST.search(prefix + name) and not (Path(directory) / name).is_symlink():
                found.append(prefix + name)
    return found


def build_sdist(sdist_directory, config_settings=None):
    """The source distribution: this checkout's files (a Bazel workspace), with PKG-INFO."""
    base = f'{_normalized_name(read_pyproject()["project"]["name"])}-{version()}'
    sdist_path = Path(sdist_directory) / f'{base}.tar.gz'
    with tarfile.open(sdist_path, 'w:gz', format=tarfile.PAX_FORMAT) as sdist:
        for relative in _sdist_files():
            if relative != 'PKG-INFO':
                sdist.add(ROOT / relative, f'{base}/{relative}', recursive=False)
        pkg_info = metadata().encode()
        info = tarfile.TarInfo(f'{base}/PKG-INFO')
        info.size = len(pkg_info)
        info.mode = 0o644
        sdist.addfile(info, io.BytesIO(pkg_info))
    return sdist_path.name
