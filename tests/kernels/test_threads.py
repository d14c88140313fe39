"""Intra-op threads (tinydl.kernels.threads): parallel_for covers the range exactly once, waits for every slice,
passes exceptions on, never splits inside a worker; and the kernels that use it (ReLU, max pooling, average
pooling's backward, GELU) give bit-identical results on one thread and on several, on arrays large enough to split."""
import threading
import warnings

import numpy as np
import pytest

import tinydl
import tinydl.functional as F
from tinydl.kernels import threads


@pytest.fixture
def two_threads():
    threads.set_num_threads(2)
    yield
    threads.set_num_threads(None)


def test_slices_cover_the_range_once_and_run_on_several_threads(two_threads):
    seen, names = [], set()

    def work(part):
        seen.extend(range(part.start, part.stop))
        names.add(threading.current_thread().name)

    threads.parallel_for(np, 1000, work, bytes_per_item=threads.MIN_PARALLEL_BYTES)
    assert sorted(seen) == list(range(1000)) and len(names) == 2


def test_small_work_and_other_array_modules_stay_in_the_calling_thread(two_threads):
    class Cupy:
        __name__ = "cupy"

    for xp, bytes_per_item in ((np, 1), (Cupy, threads.MIN_PARALLEL_BYTES)):
        names = []
        threads.parallel_for(xp, 8, lambda part: names.append((part, threading.current_thread().name)),
                             bytes_per_item)
        assert names == [(slice(0, 8), threading.current_thread().name)]


def test_an_exception_in_a_slice_is_raised_after_every_slice_is_done(two_threads):
    finished = []

    def work(part):
        if part.start > 0:
            raise ValueError(f"slice {part.start}")
        threading.Event().wait(0.05)
        finished.append(part)

    with pytest.raises(ValueError, match="slice 2"):
        threads.parallel_for(np, 4, work, bytes_per_item=threads.MIN_PARALLEL_BYTES)
    assert finished == [slice(0, 2)]


def test_the_callers_numpy_error_settings_hold_in_every_slice(two_threads):
    big = np.full(2**18, 3e38, np.float32)

    def work(part):
        np.square(big[part])

    with np.errstate(over="raise"), pytest.raises(FloatingPointError):
        threads.parallel_for(np, big.size, work, bytes_per_item=8)
    with np.errstate(over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")
        threads.parallel_for(np, big.size, work, bytes_per_item=8)


def test_work_started_inside_a_worker_is_not_split_again(two_threads):
    inner = []

    def outer(part):
        threads.parallel_for(np, 10, lambda p: inner.append(p), bytes_per_item=threads.MIN_PARALLEL_BYTES)

    threads.parallel_for(np, 2, outer, bytes_per_item=threads.MIN_PARALLEL_BYTES)
    assert sorted(inner, key=lambda p: p.start) == [slice(0, 5), slice(0, 10), slice(5, 10)]


def test_thread_count_setting():
    with pytest.raises(ValueError, match="set_num_threads"):
        threads.set_num_threads(0)
    threads.set_num_threads(3)
    assert threads.get_num_threads() == 3
    threads.set_num_threads(None)
    assert threads.get_num_threads() == threads.blas_threads()


def _relu_gelu_and_pools(x):
    t = tinydl.tensor(x, requires_grad=True)
    y = F.max_pool2d(F.relu(t), 2) + F.avg_pool2d(F.gelu(t), 3, stride=2, padding=1)
    y.backward(tinydl.tensor(np.cos(np.arange(y.size, dtype=np.float64)).reshape(y.shape).astype(x.dtype)))
    return y.numpy(), t.grad.numpy()


def test_kernels_give_the_same_bits_on_one_thread_and_on_several():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 16, 48, 48)).astype(np.float32)  # 1.2 MB: above the threshold for splitting
    x[:, :, :6] = 0  # ties in the max pool's windows
    threads.set_num_threads(1)
    try:
        serial = _relu_gelu_and_pools(x)
    finally:
        threads.set_num_threads(3)
    try:
        split = _relu_gelu_and_pools(x)
    finally:
        threads.set_num_threads(None)
    for a, b in zip(serial, split):
        np.testing.assert_array_equal(a, b)
    windows = np.maximum(x, 0).reshape(8, 16, 24, 2, 24, 2).max(axis=(3, 5))
    assert np.array_equal(F.max_pool2d(F.relu(tinydl.tensor(x)), 2).numpy(), windows)
