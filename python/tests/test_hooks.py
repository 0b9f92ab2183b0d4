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
