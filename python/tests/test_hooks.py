"""Map hooks and the helpers on them (pasha.util), in every context: when each stage runs, where, with
which function, and what the helpers do to the kernel's global names."""

import numpy as np
import pytest

import pasha as psh
from pasha.util import MapHook, with_finalize, with_init, with_local_copies, with_reduction

# Global names the kernels below work with (the helpers act on a kernel's globals).
total = None
cache = None
handle = None


class Recorder(MapHook):
    """Records each stage into shared arrays: the order they ran in, per worker."""

    def __init__(self, ctx, function):
        self.function = function
        self.stages = ctx.alloc(4 + 2 * ctx.num_workers, np.int64, fill=0)  # call order of each stage
        self.counter = ctx.alloc(1, np.int64, fill=0)
        self.context_ok = ctx.alloc(1, np.int64, fill=1)
        self.ctx = ctx

    def mark(self, slot, context, function):
        if context is not self.ctx or function is not self.function:
            self.context_ok[0] = 0
        self.counter[0] += 1
        self.stages[slot] = self.counter[0]

    def pre_map(self, context, function):
        self.mark(0, context, function)
        return function

    def pre_worker(self, context, function, worker_id):
        self.mark(4 + worker_id, context, function)
        return function

    def post_worker(self, context, function, worker_id):
        self.mark(4 + self.ctx.num_workers + worker_id, context, function)
        return function

    def post_map(self, context, function):
        self.mark(1, context, function)
        return function


def test_stages_run_pre_map_pre_worker_post_worker_post_map_with_the_context_and_function(ctx):
    def kernel(worker_id, index, value):
        pass

    hook = Recorder(ctx, kernel)
    assert hook(kernel) is kernel
    ctx.map(kernel, range(ctx.num_workers))
    n = ctx.num_workers
    pre_workers, post_workers = hook.stages[4:4 + n], hook.stages[4 + n:4 + 2 * n]
    assert hook.stages[0] == 1, 'pre_map first'
    assert (pre_workers > 1).all() and (post_workers > 1).all()
    assert (pre_workers < post_workers).all()
    assert hook.stages[1] == hook.stages.max(), 'post_map last'
    assert hook.context_ok[0] == 1, 'a hook was given another context or function'


def test_a_failed_worker_skips_its_post_worker_and_a_failed_map_its_post_map(any_ctx):
    def kernel(worker_id, index, value):
        if index == 0:
            raise ValueError('first element')

    hook = Recorder(any_ctx, kernel)
    hook(kernel)
    with pytest.raises(ValueError):
        any_ctx.map(kernel, range(any_ctx.num_workers))
    assert hook.stages[0] == 1
    assert hook.stages[1] == 0, 'post_map ran after a failed map'
    assert hook.stages[4 + any_ctx.num_workers] == 0, 'the failed worker ran its post_worker'


def test_a_hook_that_returns_no_function_is_a_type_error_naming_it(any_ctx):
    class Forgetful(MapHook):
        def pre_map(self, context, function):
            pass

    @Forgetful()
    def kernel(worker_id, index, value):
        pass

    with pytest.raises(TypeError, match='Forgetful.*pre_map returned None'):
        any_ctx.map(kernel, range(3))


def test_with_init_runs_in_each_worker_before_its_first_element_and_a_generator_gives_globals(ctx):
    started = ctx.alloc(ctx.num_workers, np.int64, fill=0)
    seen = ctx.alloc(12, np.int64, fill=-1)

    def opener(worker_id):
        handle = 100 + worker_id  # noqa: F841 - becomes the kernel's global `handle`
        yield

    @with_init(opener)
    @with_init(lambda worker_id: started.__setitem__(worker_id, 1))
    def kernel(worker_id, index, value):
        seen[index] = handle - 100 - worker_id

    ctx.map(kernel, range(12))
    assert started[:min(12, ctx.num_workers)].all()
    assert (seen == 0).all(), 'the kernel did not see its worker\'s handle'


def test_with_finalize_gets_the_worker_id_and_its_globals(ctx):
    finalized = ctx.alloc(ctx.num_workers, np.int64, fill=0)

    def opener(worker_id):
        handle = worker_id + 1  # noqa: F841
        yield

    def closer(worker_id, scope):
        finalized[worker_id] = scope['handle']

    @with_finalize(closer)
    @with_init(opener)
    def kernel(worker_id, index, value):
        pass

    ctx.map(kernel, range(ctx.num_workers))
    np.testing.assert_array_equal(finalized, np.arange(ctx.num_workers) + 1)


def test_with_local_copies_gives_each_worker_its_own_copy(ctx):
    global cache
    cache = []
    sizes = ctx.alloc(40, np.int64, fill=0)

    @with_local_copies('cache')
    def kernel(worker_id, index, value):
        cache.append(index)
        sizes[index] = len(cache)

    ctx.map(kernel, range(40))
    assert cache == [], 'the original was changed'
    share = 40 // ctx.num_workers
    assert sizes.max() <= share + 1, 'workers shared one copy'


@pytest.mark.parametrize('order', ['C', 'F'])
def test_with_reduction_sums_each_workers_copy_into_the_global_array(ctx, order):
    global total
    total = ctx.alloc((2, 3), order=order, fill=0)

    @with_reduction('total')
    def kernel(worker_id, index, value):
        total[index % 2] += value

    ctx.map(kernel, np.arange(10.0))
    np.testing.assert_allclose(total, [[20.0] * 3, [25.0] * 3])


def test_with_reduction_of_a_failed_map_leaves_the_result_as_it_was(any_ctx):
    global total
    total = any_ctx.alloc(1, fill=5)

    @with_reduction('total')
    def kernel(worker_id, index, value):
        total[0] += 1
        if index == 3:
            raise ValueError('no')

    with pytest.raises(ValueError):
        any_ctx.map(kernel, range(10))
    assert total[0] == 5


def test_with_reduction_of_names_that_are_not_arrays_is_an_error_naming_them(any_ctx):
    @with_reduction('no_such_name')
    def kernel(worker_id, index, value):
        pass

    with pytest.raises(ValueError, match='no_such_name'):
        any_ctx.map(kernel, range(3))


def test_module_level_names_and_a_custom_context_using_run_worker():
    assert psh.with_init is with_init and psh.with_reduction is with_reduction

    class Inline(psh.MapContext):
        def __init__(self):
            super().__init__(num_workers=2)

        def map(self, function, functor):
            functor = psh.functor.Functor.try_wrap(functor)
            for worker_id, share in enumerate(functor.split(self.num_workers)):
                self.run_worker(function, functor, share, worker_id)

    out = np.zeros(6)
    inits = []

    @with_init(inits.append)
    def kernel(worker_id, index, value):
        out[index] = value * 2

    Inline().map(kernel, [1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(out, [2, 4, 6, 8, 10, 12])
    assert inits == [0, 1]


class Journal(MapHook):
    """Writes (stage, hook number) into a shared journal as each stage runs: one log for the caller's
    stages and one per worker, in the order the calls happened."""

    PRE_MAP, PRE_WORKER, POST_WORKER, POST_MAP = 1, 2, 3, 4

    def __init__(self, number, journal):
        self.number = number
        self.journal = journal  # (num_workers + 1, slots, 2): row 0 the caller, row 1 + w worker w

    def write(self, row, stage):
        log = self.journal[row]
        slot = int((log[:, 0] != 0).sum())
        log[slot] = (stage, self.number)

    def pre_map(self, context, function):
        self.write(0, self.PRE_MAP)
        return function

    def pre_worker(self, context, function, worker_id):
        self.write(1 + worker_id, self.PRE_WORKER)
        return function

    def post_worker(self, context, function, worker_id):
        self.write(1 + worker_id, self.POST_WORKER)
        return function

    def post_map(self, context, function):
        self.write(0, self.POST_MAP)
        return function


def journal_of(ctx, hooks):
    return ctx.alloc((ctx.num_workers + 1, 4 * hooks, 2), np.int64, fill=0)


def entries(log):
    return [tuple(int(v) for v in entry) for entry in log if entry[0] != 0]


@pytest.mark.parametrize('count', [2, 3])
def test_several_hooks_run_pre_stages_in_the_order_attached_and_post_stages_last_attached_first(ctx, count):
    def kernel(worker_id, index, value):
        pass

    journal = journal_of(ctx, count)
    for number in range(1, count + 1):
        Journal(number, journal)(kernel)
    ctx.map(kernel, range(ctx.num_workers))
    order = list(range(1, count + 1))
    assert entries(journal[0]) == ([(Journal.PRE_MAP, n) for n in order] +
                                   [(Journal.POST_MAP, n) for n in reversed(order)])
    for worker in range(ctx.num_workers):
        assert entries(journal[1 + worker]) == ([(Journal.PRE_WORKER, n) for n in order] +
                                                [(Journal.POST_WORKER, n) for n in reversed(order)]), worker


@pytest.mark.parametrize('count', [2, 3])
def test_each_stage_is_given_the_function_the_call_before_it_returned(any_ctx, count):
    seen = any_ctx.alloc((4, count), np.int64, fill=0)  # per stage, the generation each hook was given

    def kernel(worker_id, index, value):
        pass

    class Wrapping(MapHook):
        def __init__(self, number):
            self.number = number

        def step(self, row, function):
            seen[row, self.number] = getattr(function, 'generation', 0)

            def wrapped(*args):
                return function(*args)
            wrapped.generation = getattr(function, 'generation', 0) + 1
            wrapped._pasha_hooks_ = function._pasha_hooks_
            return wrapped

        def pre_map(self, context, function):
            return self.step(0, function)

        def pre_worker(self, context, function, worker_id):
            return self.step(1, function) if worker_id == 0 else function

        def post_worker(self, context, function, worker_id):
            return self.step(2, function) if worker_id == 0 else function

        def post_map(self, context, function):
            return self.step(3, function)

    for number in range(count):
        Wrapping(number)(kernel)
    any_ctx.map(kernel, range(any_ctx.num_workers))
    assert list(seen[0]) == list(range(count)), 'pre_map: each hook gets the one before it'
    assert list(seen[1]) == list(range(count, 2 * count)), 'pre_worker starts from what pre_map left'
    assert list(seen[2]) == list(reversed(range(2 * count, 3 * count))), 'post_worker, last attached first'
    assert list(seen[3]) == list(reversed(range(count, 2 * count))), 'post_map starts from the map function'


@pytest.mark.parametrize('failing_stage', ['pre_map', 'pre_worker', 'kernel'])
def test_a_post_stage_runs_only_when_what_it_follows_succeeded(any_ctx, failing_stage):
    def kernel(worker_id, index, value):
        if failing_stage == 'kernel' and worker_id == 0:
            raise KeyError('kernel')

    journal = journal_of(any_ctx, 3)

    class Failing(Journal):
        def pre_map(self, context, function):
            super().pre_map(context, function)
            if failing_stage == 'pre_map':
                raise KeyError('pre_map')
            return function

        def pre_worker(self, context, function, worker_id):
            super().pre_worker(context, function, worker_id)
            if failing_stage == 'pre_worker' and worker_id == 0:
                raise KeyError('pre_worker')
            return function

    Journal(1, journal)(kernel)
    Failing(2, journal)(kernel)
    Journal(3, journal)(kernel)
    with pytest.raises(KeyError, match=failing_stage):
        any_ctx.map(kernel, range(any_ctx.num_workers))
    caller, worker_0 = entries(journal[0]), entries(journal[1])
    assert (Journal.POST_MAP, 1) not in caller and (Journal.POST_MAP, 2) not in caller, 'post_map after a failure'
    if failing_stage == 'pre_map':
        assert caller == [(Journal.PRE_MAP, 1), (Journal.PRE_MAP, 2)], 'the hooks after a failed pre_map ran'
        assert all(not entries(journal[1 + w]) for w in range(any_ctx.num_workers)), 'a worker ran'
    elif failing_stage == 'pre_worker':
        assert worker_0 == [(Journal.PRE_WORKER, 1), (Journal.PRE_WORKER, 2)], worker_0
    else:
        assert worker_0 == [(Journal.PRE_WORKER, n) for n in (1, 2, 3)], 'post_worker of a failed share'


@pytest.mark.parametrize('stage', ['pre_map', 'post_map'])
def test_a_thread_a_map_hook_starts_and_waits_for_maps_as_worker_0(any_ctx, stage):
    import threading
    seen = any_ctx.alloc(1, np.int64, fill=-1)

    def inner(worker_id, index, value):
        seen[0] = worker_id

    class StartsAThread(MapHook):
        def run(self, function):
            thread = threading.Thread(target=any_ctx.map, args=(inner, [0]))
            thread.start()
            thread.join(timeout=30)
            assert not thread.is_alive(), 'the hook\'s thread waited for a turn its starter holds'
            return function

    def kernel(worker_id, index, value):
        pass

    hook = StartsAThread()
    setattr(hook, stage, lambda context, function: hook.run(function))
    hook(kernel)
    any_ctx.map(kernel, range(2))
    assert seen[0] == 0


@pytest.mark.parametrize('elements, at', [(64000, 1500), (640, 15)])
@pytest.mark.parametrize('make', [lambda: psh.SerialContext(), lambda: psh.ThreadContext(2)], ids=['serial', 'threads'])
def test_a_keyboard_interrupt_in_the_callers_share_stops_the_map_and_every_worker_is_finalized(make, elements, at):
    # The interruption is the map's, even in its last chunks: the post_worker hooks of every worker run.
    ctx = make()
    finalized = []

    @psh.with_finalize(lambda worker_id, globals_: finalized.append(worker_id))
    def kernel(worker_id, index, value):
        if index == at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ctx.map(kernel, range(elements))
    assert sorted(finalized) == list(range(ctx.num_workers))
