"""pasha.xfel: European XFEL runs read by pasha's C++ reader, with EXtra-data's commonest calls, and
mapped train by train as EXtra-pasha's ExtraDataFunctor maps them. Values are checked against the
same files read with h5py."""

import glob
import os
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest

import pasha as psh
from pasha import xfel
from pasha.xfel import H5File, RunDirectory, by_id, by_index

from conftest import ONE_OF_EACH, mapping_at, write_run

CAMERA = 'FXE_XAD_GEC/CAM/CAMERA:daqOutput'
CAMERA_CONTROL = 'FXE_XAD_GEC/CAM/CAMERA'
XGM = 'SA1_XTD2_XGM/DOOCS/MAIN'
DETECTOR = 'FXE_DET_LPD1M-1/DET/0CH0:xtdf'


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp('run'), '--trains', '40')


@pytest.fixture(scope='module')
def big_run_dir(tmp_path_factory):
    # 1024 x 1024 uint16 images (2 MiB): large enough to be mapped from the file.
    return write_run(tmp_path_factory.mktemp('bigrun'), '--trains', '8', '--image', '1024x1024')


def h5py_rows(run_dir, source, group, key):
    """{train id: rows} of an INSTRUMENT key, read with h5py (EXtra-data's way: INDEX first/count)."""
    rows = {}
    for path in sorted(glob.glob(os.path.join(run_dir, '*.h5'))):
        with h5py.File(path, 'r') as f:
            if f'INSTRUMENT/{source}/{group}' not in f:
                continue
            ids = f['INDEX/trainId'][:]
            first = f[f'INDEX/{source}/{group}/first'][:]
            count = f[f'INDEX/{source}/{group}/count'][:]
            data = f[f'INSTRUMENT/{source}/{group}/{key.split(".", 1)[1].replace(".", "/")}']
            for tid, fi, c in zip(ids, first, count):
                if tid != 0:
                    rows[int(tid)] = data[fi:fi + c]
    return rows


# --- Opening and listing ----------------------------------------------------------------------------

def test_a_run_lists_its_trains_sources_and_keys_like_extra_data(run_dir):
    run = RunDirectory(run_dir)
    assert run.train_ids == list(range(10000, 10040))
    assert all(isinstance(t, np.uint64) for t in run.train_ids)
    assert run.all_sources == frozenset({CAMERA, CAMERA_CONTROL, XGM, XGM + ':output', DETECTOR})
    assert run.control_sources == frozenset({CAMERA_CONTROL, XGM})
    assert 'pulseEnergy.photonFlux.value' in run.keys_for_source(XGM)
    assert 'data.image.pixels' in run.keys_for_source(CAMERA)
    assert CAMERA in run and (CAMERA, 'data.image.pixels') in run and (XGM, 'pulseEnergy.photonFlux') in run
    assert len(run.files) == len(glob.glob(os.path.join(run_dir, '*.h5')))


def test_one_file_opens_with_h5file(run_dir):
    path = sorted(glob.glob(os.path.join(run_dir, '*DA01*.h5')))[0]
    run = H5File(path)
    assert run.files == [path]
    assert XGM in run.all_sources and DETECTOR not in run.all_sources


def test_include_picks_files_by_name_and_no_match_is_file_not_found(run_dir):
    run = RunDirectory(run_dir, include='*DET*')
    assert run.all_sources == frozenset({DETECTOR})
    with pytest.raises(FileNotFoundError, match='no-such'):
        RunDirectory(run_dir, include='*no-such*')


def test_unknown_sources_and_keys_are_key_errors_naming_them(run_dir):
    run = RunDirectory(run_dir)
    with pytest.raises(xfel.SourceNameError, match='NO/SUCH/SOURCE'):
        run['NO/SUCH/SOURCE']
    with pytest.raises(KeyError, match='no.such.key'):
        run[CAMERA, 'no.such.key']
    with pytest.raises(xfel.SourceNameError):
        run.keys_for_source('NO/SUCH/SOURCE')
    with pytest.raises(TypeError, match='data\\[source, key\\]'):
        run[3.5]


def test_missing_and_damaged_files_are_format_errors_naming_them(tmp_path, run_dir):
    with pytest.raises(xfel.FormatError, match='no-such-dir'):
        RunDirectory(str(tmp_path / 'no-such-dir'))
    not_hdf5 = tmp_path / 'RAW-R0001-DA01-S00000.h5'
    not_hdf5.write_bytes(b'not an HDF5 file at all' * 100)
    with pytest.raises(ValueError) as caught:
        H5File(str(not_hdf5))
    assert isinstance(caught.value, xfel.FormatError) and str(not_hdf5) in str(caught.value)
    # In a directory with good files, EXtra-data skips it with a warning; so does pasha.
    mixed = tmp_path / 'mixed'
    write_run(mixed, '--trains', '8')
    (mixed / 'RAW-R0450-DA99-S00000.h5').write_bytes(b'garbage' * 100)
    with pytest.warns(UserWarning, match='DA99'):
        run = RunDirectory(str(mixed))
    assert len(run.train_ids) == 8


def test_a_string_key_is_a_format_error_when_asked_for_and_left_out_of_dicts(run_dir):
    run = RunDirectory(run_dir)
    with pytest.raises(xfel.FormatError, match='not stored as numbers'):
        run[XGM, 'state']
    _, data = run.train_from_index(0)
    assert 'state.value' not in data[XGM] and 'pulseEnergy.photonFlux.value' in data[XGM]


# --- KeyData ------------------------------------------------------------------------------------------

def test_key_data_has_the_stored_dtype_shape_counts_and_values(run_dir):
    run = RunDirectory(run_dir)
    kd = run[CAMERA, 'data.image.pixels']
    expected = h5py_rows(run_dir, CAMERA, 'data', 'data.image.pixels')
    counts = np.array([len(expected[int(t)]) for t in run.train_ids], dtype=np.uint64)
    assert kd.dtype == np.uint16
    assert kd.entry_shape == (32, 40)
    assert kd.shape == (int(counts.sum()), 32, 40) and kd.ndim == 3
    np.testing.assert_array_equal(kd.data_counts(labelled=False), counts)
    labelled = kd.data_counts()
    assert list(labelled.index) == run.train_ids and list(labelled.values) == list(counts)
    np.testing.assert_array_equal(kd.ndarray(), np.concatenate([expected[int(t)] for t in run.train_ids]))
    np.testing.assert_array_equal(kd.train_id_coordinates(), np.repeat(run.train_ids, counts.astype(int)))
    flux = run[XGM, 'pulseEnergy.photonFlux']
    assert flux.key == 'pulseEnergy.photonFlux.value' and flux.dtype == np.float32 and flux.shape == (40,)


def test_key_data_trains_are_extra_datas(run_dir):
    kd = RunDirectory(run_dir)[CAMERA, 'data.image.pixels']
    expected = h5py_rows(run_dir, CAMERA, 'data', 'data.image.pixels')
    default = list(kd.trains())
    assert [int(t) for t, _ in default] == [t for t in sorted(expected) if len(expected[t]) > 0]
    for tid, data in kd.trains(include_empty=True):
        rows = expected[int(tid)]
        if len(rows) == 0:
            assert data is None
        elif len(rows) == 1:
            np.testing.assert_array_equal(data, rows[0])
        else:
            np.testing.assert_array_equal(data, rows)
    for tid, data in kd.trains(keep_dims=True, include_empty=True):
        np.testing.assert_array_equal(data, expected[int(tid)])
        assert data.shape[1:] == (32, 40)


@pytest.mark.parametrize('selection, ids', [
    (by_id[10002:10005], [10002, 10003, 10004]),
    (by_id[10030:20000], list(range(10030, 10040))),
    (by_id[[10007, 10003, 99]], [10003, 10007]),
    (by_id[10000:10010:3], [10000, 10003, 10006, 10009]),
    (by_index[[0, 3]], [10000, 10003]),
    (by_index[5:8], [10005, 10006, 10007]),
    (slice(2, 4), [10002, 10003]),
    (slice(None, None, 10), [10000, 10010, 10020, 10030]),
    (-1, [10039]),
    ([1, -1], [10001, 10039]),
    (np.arange(40) % 20 == 0, [10000, 10020]),
])
def test_train_selections_pick_the_trains_asked(run_dir, selection, ids):
    run = RunDirectory(run_dir)
    assert run.select_trains(selection).train_ids == ids
    assert run[CAMERA, 'data.image.pixels'][selection].train_ids == ids
    assert run[CAMERA].select_trains(selection).train_ids == ids


def test_bad_train_selections_are_errors_naming_them(run_dir):
    run = RunDirectory(run_dir)
    with pytest.raises(IndexError):
        run.select_trains(40)
    with pytest.raises(ValueError, match='40'):
        run.select_trains(np.ones(3, dtype=bool))
    with pytest.raises(TypeError):
        run.select_trains('10000')
    assert repr(by_id[10:20]) == 'by_id[10:20]'


def test_select_picks_sources_and_keys_by_glob_pairs_lists_and_dicts(run_dir):
    run = RunDirectory(run_dir)
    assert run.select('*XGM*').all_sources == frozenset({XGM, XGM + ':output'})
    assert run.select(XGM, 'pulseEnergy.*').keys_for_source(XGM) == {
        'pulseEnergy.photonFlux.value', 'pulseEnergy.photonFlux.timestamp'}
    assert run.select([(CAMERA, 'data.image.*'), XGM]).all_sources == frozenset({CAMERA, XGM})
    assert run.select({CAMERA: {'data.image.pixels'}, XGM: None}).keys_for_source(CAMERA) == {'data.image.pixels'}
    with pytest.raises(ValueError, match='NOTHING'):
        run.select('NOTHING*')


# --- Maps ---------------------------------------------------------------------------------------------

@pytest.fixture(params=list(ONE_OF_EACH), ids=list(ONE_OF_EACH))
def any_ctx(request):
    return ONE_OF_EACH[request.param]()


def test_a_map_over_key_data_gives_each_train_as_extra_pasha_does(any_ctx, run_dir):
    run = RunDirectory(run_dir)
    kd = run[CAMERA, 'data.image.pixels']
    expected = h5py_rows(run_dir, CAMERA, 'data', 'data.image.pixels')
    n = len(kd.train_ids)
    visits = any_ctx.alloc(shape=n, dtype=np.int32, fill=0)
    ids = any_ctx.alloc(shape=n, dtype=np.uint64, fill=0)
    sums = any_ctx.alloc(shape=n, dtype=np.float64, fill=-1)
    kinds = any_ctx.alloc(shape=n, dtype=np.int32, fill=-1)

    def kernel(worker_id, index, train_id, data):
        assert isinstance(train_id, np.uint64)
        visits[index] += 1
        ids[index] = train_id
        kinds[index] = 0 if data is None else data.ndim
        sums[index] = 0 if data is None else data.sum(dtype=np.float64)

    any_ctx.map(kernel, kd)
    assert list(visits) == [1] * n
    assert list(ids) == kd.train_ids
    for i, tid in enumerate(kd.train_ids):
        rows = expected[int(tid)]
        assert kinds[i] == (0 if len(rows) == 0 else 2 if len(rows) == 1 else 3), i
        assert sums[i] == rows.sum(dtype=np.float64)


def test_a_map_over_source_data_and_a_run_gives_extra_datas_train_dicts(any_ctx, run_dir):
    run = RunDirectory(run_dir).select([(CAMERA, '*'), (XGM, 'pulseEnergy.*')])
    expected = h5py_rows(run_dir, CAMERA, 'data', 'data.image.pixels')
    n = len(run.train_ids)
    ok = any_ctx.alloc(shape=(2, n), dtype=np.int32, fill=0)

    def check(index, train_id, source_data):
        rows = expected[train_id]
        assert source_data['metadata'] == {'source': CAMERA, 'timestamp.tid': train_id}
        if len(rows) == 0:
            assert 'data.image.pixels' not in source_data
        else:
            np.testing.assert_array_equal(source_data['data.image.pixels'], rows[0] if len(rows) == 1 else rows)

    def per_source(worker_id, index, train_id, data):
        assert isinstance(train_id, int)
        check(index, train_id, data)
        ok[0, index] += 1

    def per_run(worker_id, index, train_id, data):
        assert set(data) == {CAMERA, XGM}
        check(index, train_id, data[CAMERA])
        assert data[XGM]['pulseEnergy.photonFlux.value'].shape == ()  # one value per train
        ok[1, index] += 1

    any_ctx.map(per_source, run[CAMERA])
    any_ctx.map(per_run, run)
    assert (ok == 1).all()


def test_every_train_is_visited_even_those_no_file_holds(any_ctx, tmp_path):
    # The detector's files hold fewer trains than the run: its empty trains still get their index.
    run_dir = write_run(tmp_path / 'short', '--trains', '30', '--det-per-file', '7')
    run = RunDirectory(run_dir)
    kd = run[DETECTOR, 'image.data']
    visits = any_ctx.alloc(shape=len(kd.train_ids), dtype=np.int32, fill=0)
    any_ctx.map(lambda w, i, t, d: visits.__setitem__(i, visits[i] + 1), kd, schedule='dynamic', chunk=3)
    assert (visits == 1).all()


def test_large_rows_come_mapped_and_may_be_kept_past_the_kernel_call(big_run_dir):
    kd = RunDirectory(big_run_dir)[CAMERA, 'data.image.pixels']
    expected = h5py_rows(big_run_dir, CAMERA, 'data', 'data.image.pixels')
    camera_files = {os.path.realpath(path) for path in glob.glob(os.path.join(big_run_dir, '*.h5'))}
    for ctx in (psh.SerialContext(), psh.ThreadContext(2)):
        kept = {}

        def keep(worker_id, index, train_id, data):
            if data is not None:
                kept[int(train_id)] = data
                data[...] = 7  # the kernel's own copy: the file does not change

        ctx.map(keep, kd)
        assert kept
        for data in kept.values():
            where = mapping_at(data.__array_interface__['data'][0])
            assert where is not None and os.path.realpath(where) in camera_files, f'rows not mapped from the file: {where!r}'
        for tid, data in kept.items():
            assert (data == 7).all()
    for tid, data in kd.trains(keep_dims=True):
        np.testing.assert_array_equal(data, expected[int(tid)])


def test_a_file_damaged_during_a_map_raises_format_error_in_the_caller(any_ctx, tmp_path):
    run_dir = write_run(tmp_path / 'damaged', '--trains', '16')
    kd = RunDirectory(run_dir)[DETECTOR, 'image.data']
    kd.close()
    for path in glob.glob(os.path.join(run_dir, '*DET*.h5')):
        os.truncate(path, os.path.getsize(path) // 2)
    with pytest.raises(xfel.FormatError) as caught:
        any_ctx.map(lambda *args: None, kd)
    assert 'DET' in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_a_kernels_exception_over_xfel_data_reaches_the_caller(any_ctx, run_dir):
    kd = RunDirectory(run_dir)[XGM, 'pulseEnergy.photonFlux']

    def kernel(worker_id, index, train_id, data):
        if index == 7:
            raise LookupError(f'train {train_id}')

    with pytest.raises(LookupError, match='train 10007'):
        any_ctx.map(kernel, kd)


H5PY_WALKS_DURING_PROCESS_MAPS = """
import sys, threading, time
import h5py
import numpy as np
import pasha as psh
from pasha.xfel import RunDirectory

run_dir, path = sys.argv[1], sys.argv[2]
walking = True
walks = 0

def walk():  # h5py's visit runs this callback under HDF5's lock, letting go of the GIL as it sleeps
    global walks
    while walking:
        with h5py.File(path, 'r') as f:
            f.visit(lambda name: time.sleep(0.0003))
        walks += 1

thread = threading.Thread(target=walk)
thread.start()
context = psh.ProcessContext(2)
try:
    for _ in range(15):
        # Opened afresh each time: the workers open its files, through HDF5.
        kd = RunDirectory(run_dir)['%s', 'data.image.pixels']
        sums = context.alloc(shape=len(kd.train_ids), dtype=np.uint64)

        def kernel(worker_id, index, train_id, data):
            sums[index] = 0 if data is None else data.sum(dtype=np.uint64)

        context.map(kernel, kd)
finally:
    walking = False
    thread.join()
assert walks > 0
print('ok', int(sums.sum()))
""" % CAMERA


def test_process_maps_work_while_h5py_in_another_thread_is_inside_hdf5(run_dir):
    # Each fork waits until h5py (and so HDF5) is between calls: a worker that inherited HDF5's lock
    # held by the walking thread would wait for it forever.
    path = sorted(glob.glob(os.path.join(run_dir, '*DA01*.h5')))[0]
    done = subprocess.run([sys.executable, '-c', H5PY_WALKS_DURING_PROCESS_MAPS, run_dir, path],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    expected = sum(int(rows.sum(dtype=np.uint64))
                   for rows in h5py_rows(run_dir, CAMERA, 'data', 'data.image.pixels').values())
    assert done.stdout.split() == ['ok', str(expected)]


def test_xfel_functor_split_and_iterate_are_public(run_dir):
    kd = RunDirectory(run_dir)[XGM, 'pulseEnergy.photonFlux']
    functor = psh.Functor.try_wrap(kd)
    assert isinstance(functor, psh.XfelFunctor)
    shares = functor.split(3)
    entries = [entry for share in shares for entry in functor.iterate(share)]
    assert [e[0] for e in entries] == list(range(40))
    assert [int(e[1]) for e in entries] == list(range(10000, 10040))
    np.testing.assert_array_equal(np.array([e[2] for e in entries]), kd.ndarray())


# --- lsxfel -------------------------------------------------------------------------------------------

def run_lsxfel(*args):
    return subprocess.run([sys.executable, '-m', 'pasha.xfel.lsxfel', *args], capture_output=True, text=True,
                          timeout=120)


def test_lsxfel_lists_a_run_and_checks_every_train(run_dir):
    listed = run_lsxfel(run_dir, '--keys')
    assert listed.returncode == 0, listed.stderr
    assert '40 trains (10000 - 10039)' in listed.stdout
    assert 'data.image.pixels (32, 40) uint16' in listed.stdout
    checked = run_lsxfel(run_dir, '--check')
    assert checked.returncode == 0, checked.stderr
    assert 'all 40 trains read' in checked.stdout
    assert run_lsxfel(run_dir, '--no-such-flag').returncode == 2
    missing = run_lsxfel(run_dir + '/nothing-here')
    assert missing.returncode == 1 and 'nothing-here' in missing.stderr


# --- EXtra-data's collections -------------------------------------------------------------------------

FAKE_EXTRA_DATA = '''
"""A stand-in for EXtra-data's classes, as pasha sees them: files, train ids, selections."""
import numpy as np

class FileAccess:
    def __init__(self, filename):
        self.filename = filename
    def close(self):
        pass

class DataCollection:
    # trains(): as EXtra-data 1.24's (require_all=False): every train, a dict of what it has.
    def __init__(self, files, train_ids, selection, inc_suspect_trains=True):
        self.files = [FileAccess(f) for f in files]
        self.train_ids = [np.uint64(t) for t in train_ids]
        self.selection = selection
        self.inc_suspect_trains = inc_suspect_trains
    def select_trains(self, s):
        return DataCollection([f.filename for f in self.files], self.train_ids[s], self.selection)
    def trains(self, require_all=False):
        for tid in self.train_ids:
            yield int(tid), {'fake': True}

from . import keydata, sourcedata
from .keydata import KeyData
from .sourcedata import SourceData
'''

FAKE_KEYDATA = '''
import numpy as np
class KeyData:
    # trains(): as EXtra-data 1.24's, which walks the chunks that hold data (_data_chunks_nonempty):
    # a train with no data is left out, include_empty or not (here: each train is a chunk of its own,
    # `counts` its number of entries).
    def __init__(self, source, key, files, train_ids, counts=None):
        from . import FileAccess
        self.source, self.key = source, key
        self.files = [FileAccess(f) for f in files]
        self.train_ids = [np.uint64(t) for t in train_ids]
        self.counts = list(counts) if counts is not None else [1] * len(self.train_ids)
        self.inc_suspect_trains = True
    def select_trains(self, s):
        selected = KeyData(self.source, self.key, [f.filename for f in self.files], [], [])
        selected.train_ids, selected.counts = self.train_ids[s], self.counts[s]
        return selected
    def trains(self, keep_dims=False, include_empty=False):
        for tid, count in zip(self.train_ids, self.counts):
            if count:
                yield tid, np.full(count, int(tid))
'''

FAKE_SOURCEDATA = '''
import numpy as np
class SourceData:
    def __init__(self, source, sel_keys, files, train_ids):
        from . import FileAccess
        self.source, self.sel_keys = source, sel_keys
        self.files = [FileAccess(f) for f in files]
        self.train_ids = [np.uint64(t) for t in train_ids]
        self.inc_suspect_trains = True
'''


@pytest.fixture
def extra_data(tmp_path, monkeypatch):
    package = tmp_path / 'fake' / 'extra_data'
    package.mkdir(parents=True)
    (package / '__init__.py').write_text(FAKE_EXTRA_DATA)
    (package / 'keydata.py').write_text(FAKE_KEYDATA)
    (package / 'sourcedata.py').write_text(FAKE_SOURCEDATA)
    monkeypatch.syspath_prepend(str(tmp_path / 'fake'))
    for name in [m for m in sys.modules if m == 'extra_data' or m.startswith('extra_data.')]:
        monkeypatch.delitem(sys.modules, name)
    import extra_data
    yield extra_data
    for name in [m for m in sys.modules if m == 'extra_data' or m.startswith('extra_data.')]:
        del sys.modules[name]


def test_extra_data_key_data_is_read_by_pashas_reader_from_the_same_files_and_trains(any_ctx, extra_data, run_dir):
    files = sorted(glob.glob(os.path.join(run_dir, '*.h5')))
    trains = list(range(10004, 10020))
    xd_key = extra_data.keydata.KeyData(CAMERA, 'data.image.pixels', files, trains)
    functor = psh.Functor.try_wrap(xd_key)
    assert isinstance(functor, psh.ExtraDataFunctor) and functor._pasha is not None
    expected = h5py_rows(run_dir, CAMERA, 'data', 'data.image.pixels')
    sums = any_ctx.alloc(shape=len(trains), dtype=np.float64, fill=-1)
    ids = any_ctx.alloc(shape=len(trains), dtype=np.uint64, fill=0)

    def kernel(worker_id, index, train_id, data):
        ids[index] = train_id
        sums[index] = -2 if data is None else data.sum(dtype=np.float64)

    any_ctx.map(kernel, xd_key)
    assert list(ids) == trains
    assert list(sums) == [-2 if len(expected[t]) == 0 else expected[t].sum(dtype=np.float64) for t in trains]


def test_extra_data_collections_and_sources_keep_their_selection(extra_data, run_dir):
    files = sorted(glob.glob(os.path.join(run_dir, '*.h5')))
    dc = extra_data.DataCollection(files, list(range(10000, 10010)), {XGM: {'pulseEnergy.photonFlux.value'},
                                                                      CAMERA: None})
    got = {}
    psh.SerialContext().map(lambda w, i, t, d: got.__setitem__(t, d), dc)
    assert sorted(got) == list(range(10000, 10010))
    assert set(got[10001]) == {XGM, CAMERA}
    assert set(got[10001][XGM]) == {'pulseEnergy.photonFlux.value', 'metadata'}
    sd = extra_data.sourcedata.SourceData(CAMERA, None, files, [10002, 10003])
    seen = []
    psh.SerialContext().map(lambda w, i, t, d: seen.append((i, t, sorted(d))), sd)
    assert seen == [(0, 10002, ['data.image.pixels', 'data.trainId', 'metadata']),
                    (1, 10003, ['data.image.pixels', 'data.trainId', 'metadata'])]


def test_extra_data_collections_pashas_reader_cannot_open_are_read_through_extra_data(extra_data, tmp_path):
    bogus = tmp_path / 'RAW-R0001-DA01-S00000.h5'
    bogus.write_bytes(b'not HDF5' * 64)
    dc = extra_data.DataCollection([str(bogus)], [1, 2, 3], {})
    with pytest.warns(UserWarning, match="through EXtra-data"):
        functor = psh.Functor.try_wrap(dc)
    got = []
    psh.SerialContext().map(lambda w, i, t, d: got.append((i, t, d)), functor)
    assert got == [(0, 1, {'fake': True}), (1, 2, {'fake': True}), (2, 3, {'fake': True})]


def test_trains_extra_data_leaves_out_are_visited_at_their_own_index_without_data(any_ctx, extra_data, tmp_path):
    bogus = tmp_path / 'RAW-R0001-DA01-S00000.h5'
    bogus.write_bytes(b'not HDF5' * 64)
    counts = [1, 0, 0, 2, 0, 1, 1, 0]  # trains 11, 12, 14 and 17 have no data
    kd = extra_data.keydata.KeyData(CAMERA, 'data.image.pixels', [str(bogus)], range(10, 18), counts)
    with pytest.warns(UserWarning, match="through EXtra-data"):
        functor = psh.Functor.try_wrap(kd)
    seen = any_ctx.alloc(8, np.int64, fill=-1)  # per index: the train id, -2 for no data

    def kernel(worker_id, index, train_id, data):
        seen[index] = -2 if data is None else int(data[0] if np.ndim(data) else data)
        assert int(train_id) == 10 + index

    any_ctx.map(kernel, functor)
    assert list(seen) == [10, -2, -2, 13, -2, 15, 16, -2]


def test_trains_extra_data_gives_out_of_order_are_an_error_naming_the_train(extra_data, tmp_path):
    bogus = tmp_path / 'RAW-R0001-DA01-S00000.h5'
    bogus.write_bytes(b'not HDF5' * 64)
    kd = extra_data.keydata.KeyData(CAMERA, 'data.image.pixels', [str(bogus)], range(10, 14))
    kd.trains = lambda keep_dims=False, include_empty=False: iter([(10, 1), (12, 1), (11, 1), (13, 1)])
    with pytest.warns(UserWarning, match="through EXtra-data"):
        functor = psh.Functor.try_wrap(kd)
    functor.obj.select_trains = lambda s: kd
    with pytest.raises(ValueError, match='train 11 out of order'):
        psh.SerialContext().map(lambda *args: None, functor)
