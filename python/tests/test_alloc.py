"""Arrays from a context's alloc: what shape, dtype, order and contents they have, where their memory
lives and how long, in every context."""

import gc
import os

import numpy as np
import pytest

import pasha as psh
from conftest import ONE_OF_EACH

from conftest import mapped_bytes


@pytest.mark.parametrize('shape_in, shape_out', [(3, (3,)), ((3, 2), (3, 2)), ([4, 0, 2], (4, 0, 2)),
                                                 (np.int64(5), (5,)), ((), ())])
@pytest.mark.parametrize('dtype', [None, np.uint16, 'complex64', np.dtype([('x', 'f4'), ('n', 'i8')])])
@pytest.mark.parametrize('order', ['C', 'F'])
def test_alloc_gives_the_shape_dtype_and_order_asked_for(ctx, shape_in, shape_out, dtype, order):
    array = ctx.alloc(shape=shape_in, dtype=dtype, order=order)
    assert type(array) is np.ndarray
    assert array.shape == shape_out
    assert array.dtype == np.dtype(dtype if dtype is not None else np.float64)
    assert array.flags.c_contiguous if order == 'C' else array.flags.f_contiguous
    assert array.flags.writeable


@pytest.mark.parametrize('fill', [0, 1, 42.5, np.arange(4.0)])
def test_fill_sets_every_element_and_broadcasts(ctx, fill):
    array = ctx.alloc((3, 4), fill=fill)
    np.testing.assert_array_equal(array, np.broadcast_to(fill, (3, 4)))


@pytest.mark.parametrize('order', ['C', 'F'])
def test_per_worker_adds_a_contiguous_worker_axis_first_for_c_and_last_for_f(ctx, order):
    array = ctx.alloc((2, 5), np.int32, order=order, fill=7, per_worker=True)
    expected = (ctx.num_workers, 2, 5) if order == 'C' else (2, 5, ctx.num_workers)
    assert array.shape == expected
    assert array.flags.c_contiguous if order == 'C' else array.flags.f_contiguous
    assert (array == 7).all()


@pytest.mark.parametrize('order_like, order_in, flag', [
    ('C', None, 'c_contiguous'), ('F', None, 'f_contiguous'), ('C', 'F', 'f_contiguous'),
    ('F', 'C', 'c_contiguous')])
def test_like_gives_shape_dtype_and_order_unless_overridden(ctx, order_like, order_in, flag):
    prototype = np.random.rand(2, 3, 4).astype(np.float32, order=order_like)
    array = ctx.alloc(like=prototype, order=order_in)
    assert array.shape == (2, 3, 4) and array.dtype == np.float32 and getattr(array.flags, flag)
    other = ctx.alloc(shape=(6, 4), dtype=np.uint16, like=prototype)
    assert other.shape == (6, 4) and other.dtype == np.uint16


def test_numpy_style_names_and_their_like_and_per_worker_forms(ctx):
    assert (ctx.zeros(3) == 0).all() and (ctx.ones((2, 2), np.int8) == 1).all()
    assert (ctx.full(4, 2.5) == 2.5).all() and ctx.full(4, 2).dtype == np.float64
    assert ctx.empty((2, 3), order='F').flags.f_contiguous
    prototype = np.zeros((2, 3), np.int16, order='F')
    assert ctx.zeros_like(prototype).flags.f_contiguous and ctx.ones_like(prototype).dtype == np.int16
    assert (ctx.full_like(prototype, 9) == 9).all()
    assert ctx.empty_like(prototype, shape=(4,), order='C').shape == (4,)
    for order in 'CF':  # the worker axis comes first in either order, as EXtra-pasha put it
        assert ctx.zeros_per_worker((2, 3), order=order).shape == (ctx.num_workers, 2, 3)
    assert (ctx.full_per_worker(2, 5) == 5).all()
    with pytest.warns(DeprecationWarning):
        assert (ctx.array(3) == 0).all()
    with pytest.warns(DeprecationWarning):
        assert ctx.array_per_worker(3).shape == (ctx.num_workers, 3)


def test_module_level_allocation_uses_the_default_context():
    psh.set_default_context('threads', num_workers=2)
    assert psh.alloc(3, fill=1).sum() == 3
    assert psh.alloc_per_worker(3).shape == (2, 3)
    assert psh.zeros_per_worker(4).shape == (2, 4)
    with pytest.warns(DeprecationWarning):
        assert (psh.array(100) == 0).all()


def mapping_at(address):
    """The line of /proc/self/maps that holds `address`, or ''."""
    with open('/proc/self/maps') as maps:
        for line in maps:
            start, end = (int(part, 16) for part in line.split()[0].split('-'))
            if start <= address < end:
                return line
    return ''


def address_of(array):
    return array.__array_interface__['data'][0]


def test_process_arrays_are_anonymous_shared_memory_and_heap_for_threads():
    shared = psh.ProcessContext(2).alloc(1000)
    mapping = mapping_at(address_of(shared))
    assert mapping.split()[1] == 'rw-s', mapping  # MAP_SHARED
    assert mapping.rstrip().endswith('/dev/zero (deleted)'), mapping  # anonymous: no file anyone could open
    heap = psh.ThreadContext(2).alloc(10)
    assert mapping_at(address_of(heap)).split()[1] == 'rw-p'


def test_the_memory_lives_as_long_as_any_view_and_goes_with_the_last():
    array = psh.ProcessContext(2).alloc(1 << 20, np.uint8, fill=3)  # the context goes at once
    view = array[10:20]
    address = address_of(array)
    del array
    gc.collect()
    assert (view == 3).all()
    assert mapping_at(address)
    del view
    gc.collect()
    assert not mapping_at(address)


def test_objects_cannot_be_shared_with_worker_processes_but_threads_have_them(any_ctx):
    if isinstance(any_ctx, psh.ProcessContext):
        with pytest.raises(ValueError, match='cannot be shared with worker processes'):
            any_ctx.alloc(3, object)
    else:
        array = any_ctx.alloc(3, object, fill=None)
        array[:] = ['a', 'b', 'c']
        assert list(array) == ['a', 'b', 'c']


@pytest.mark.parametrize('kwargs, error, text', [
    (dict(), ValueError, 'shape must be specified'),
    (dict(shape=-1), ValueError, 'negative'),
    (dict(shape=(2, -3)), ValueError, '-3'),
    (dict(shape='abc'), TypeError, "'abc'"),
    (dict(shape=2.5), TypeError, '2.5'),
    (dict(shape=3, dtype='no such type'), TypeError, 'no such type'),
    (dict(shape=3, order='X'), ValueError, "'X'"),
    (dict(shape=3, fill=np.arange(4)), ValueError, 'broadcast'),
])
def test_bad_arguments_are_the_errors_numpy_gives_naming_the_value(any_ctx, kwargs, error, text):
    with pytest.raises(error, match=text):
        any_ctx.alloc(**kwargs)


def test_an_array_larger_than_memory_is_a_memory_error(any_ctx):
    with pytest.raises(MemoryError):
        any_ctx.alloc(1 << 50, np.uint8)


def test_arrays_allocated_before_a_fork_of_the_users_stay_shared_with_the_child():
    ctx = psh.ProcessContext(2)
    array = ctx.alloc(4, fill=0)
    pid = os.fork()
    if pid == 0:
        array[2] = 5.0
        os._exit(0)
    os.waitpid(pid, 0)
    assert array[2] == 5.0


def test_memory_lives_as_long_as_any_view_and_goes_with_the_last(any_ctx):
    # Large enough to be a mapping of its own in every context: whether its memory is still there
    # shows in /proc/self/maps (once it is gone, other mappings may take some of its addresses).
    size = 64 << 20
    array = any_ctx.alloc(size, np.uint8)
    address = array.__array_interface__['data'][0]
    view = array[1 << 20:2 << 20]
    del array
    gc.collect()
    assert mapped_bytes(address, size) == size, 'the memory went while a view of it lived'
    view[...] = 1
    del view
    gc.collect()
    assert mapped_bytes(address, size) < size, 'pasha kept the memory once Python let go of every view'


def resident_bytes():
    with open('/proc/self/statm') as statm:
        return int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def test_large_arrays_go_back_to_the_system_when_they_die(any_ctx):
    # As a script does: a few large arrays alive at a time, each written, then dropped.
    before = resident_bytes()
    alive = []
    for _ in range(320):
        alive.append(any_ctx.alloc(1 << 20, np.float64, fill=0))
        if len(alive) == 16:
            alive = []
    alive = []
    gc.collect()
    assert resident_bytes() - before < 48 << 20, 'freed arrays stayed resident'


def resident_bytes_of_mapping(array):
    """How many bytes of the mapping holding `array` this process has in memory (/proc/self/smaps Rss)."""
    address = array.__array_interface__['data'][0]
    with open('/proc/self/smaps') as smaps:
        inside = False
        for line in smaps:
            fields = line.split()
            if '-' in fields[0] and not fields[0].endswith(':'):
                begin, end = (int(x, 16) for x in fields[0].split('-'))
                inside = begin <= address < end
            elif inside and fields[0] == 'Rss:':
                return int(fields[1]) * 1024
    raise AssertionError('no mapping holds the array')


BIG = 8 << 20  # bytes: a mapping of its own in every context


@pytest.mark.parametrize('name', ['serial', 'threads', 'processes'])
def test_a_fill_of_zeros_on_fresh_memory_writes_nothing_and_reads_as_zeros(name):
    # (Thread workers touching an array first would fault it in: never, whatever the machine.)
    ctx = psh.ThreadContext(3, first_touch='never') if name == 'threads' else ONE_OF_EACH[name]()
    zeros = ctx.alloc(shape=BIG // 8, dtype=np.float64, fill=0)
    assert resident_bytes_of_mapping(zeros) == 0
    assert not zeros.any()
    ones = ctx.alloc(shape=BIG // 8, dtype=np.float64, fill=1)
    assert resident_bytes_of_mapping(ones) >= BIG
    assert (ones == 1).all()
    # -0.0 is not all zero bits: written.
    negative_zeros = ctx.alloc(shape=BIG // 8, dtype=np.float64, fill=-0.0)
    assert np.signbit(negative_zeros).all()
    # Small arrays come from the heap, which may hold old values: a fill of zeros is written.
    for _ in range(3):
        small = ctx.alloc(shape=100, dtype=np.int64, fill=0)
        assert not small.any()
        small[:] = 7


def test_thread_arrays_are_touched_first_by_the_workers_only_across_numa_nodes_or_when_asked():
    numa_nodes = len([name for name in os.listdir('/sys/devices/system/node')
                      if name.startswith('node') and name[4:].isdigit()])
    if numa_nodes == 1:  # the default, 'numa', touches nothing on one node
        assert resident_bytes_of_mapping(psh.ThreadContext(2).alloc(shape=BIG // 8, dtype=np.float64)) == 0
    asked = psh.ThreadContext(2, first_touch='always')
    assert resident_bytes_of_mapping(asked.alloc(shape=BIG // 8, dtype=np.float64)) >= BIG
    never = psh.ThreadContext(2, first_touch='never')
    assert resident_bytes_of_mapping(never.alloc(shape=BIG // 8, dtype=np.float64)) == 0
    with pytest.raises(ValueError, match="first_touch must be 'numa', 'always' or 'never', not 'sometimes'"):
        psh.ThreadContext(2, first_touch='sometimes')


def test_a_fill_keeps_its_sign_and_type_in_contexts_of_heap_arrays():
    class MyHeapContext(psh.context.HeapContext):
        pass

    heap = MyHeapContext(num_workers=1)
    assert np.signbit(heap.full(4, -0.0)).all()
    objects = psh.SerialContext().full(3, 0.0, dtype=object)
    assert [type(x) for x in objects] == [float] * 3
