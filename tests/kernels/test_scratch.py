"""Kernel scratch memory (tinydl.kernels.scratch): reused per role and thread on NumPy, fresh elsewhere, never
shared between roles; and the kernels that use it give the same results call after call."""
import threading

import numpy as np
import pytest

import tinydl
import tinydl.functional as F
from tinydl.kernels import conv, pooling, scratch
from tinydl.kernels.geometry import Conv2dGeometry, Pool2dGeometry


@pytest.fixture(autouse=True)
def empty_buffers():
    scratch.release()
    yield
    scratch.release()


def test_a_role_reuses_its_memory_and_grows_to_the_largest_request():
    first = scratch.scratch(np, "test.a", (4, 8), np.float32)
    again = scratch.scratch(np, "test.a", (2, 3), np.float64)
    assert np.shares_memory(first, again)
    assert again.shape == (2, 3) and again.dtype == np.float64 and again.flags.c_contiguous
    larger = scratch.scratch(np, "test.a", (100,), np.float64)
    assert larger.nbytes == 800 and scratch.kept_bytes() == 800
    assert np.shares_memory(larger, scratch.scratch(np, "test.a", (10,), np.float32))


def test_roles_never_share_memory():
    a = scratch.scratch(np, "test.a", (64,), np.float32)
    b = scratch.scratch(np, "test.b", (64,), np.float32)
    assert not np.shares_memory(a, b)


def test_zeroed_clears_what_an_earlier_request_left():
    scratch.scratch(np, "test.a", (16,), np.float32)[...] = 7
    assert not scratch.scratch(np, "test.a", (16,), np.float32, zeroed=True).any()


def test_requests_over_the_limit_are_not_kept(monkeypatch):
    monkeypatch.setattr(scratch, "MAX_KEPT_BYTES", 1024)
    big = scratch.scratch(np, "test.a", (1024,), np.float32)
    assert scratch.kept_bytes() == 0
    assert not np.shares_memory(big, scratch.scratch(np, "test.a", (1024,), np.float32))


def test_each_thread_has_its_own_buffers():
    here = scratch.scratch(np, "test.a", (32,), np.float32)
    there = []
    worker = threading.Thread(target=lambda: there.append(scratch.scratch(np, "test.a", (32,), np.float32)))
    worker.start()
    worker.join()
    assert not np.shares_memory(here, there[0])


def test_other_array_modules_get_fresh_arrays():
    class FakeModule:
        __name__ = "cupy"
        empty, zeros = staticmethod(np.empty), staticmethod(np.zeros)

    first = scratch.scratch(FakeModule, "test.a", (8,), np.float32, zeroed=True)
    second = scratch.scratch(FakeModule, "test.a", (8,), np.float32)
    assert not first.any() and not np.shares_memory(first, second) and scratch.kept_bytes() == 0


def _conv_results(x, w, b, gy, geometry):
    return (conv.conv2d_forward(x, w, b, geometry), conv.conv2d_input_grad(gy, w, x.shape, geometry),
            conv.conv2d_weight_grad(x, gy, w.shape, geometry))


@pytest.mark.parametrize("channels", [3, 32])  # the planar layout (with the bias row) and channels-last im2col
def test_convolutions_agree_when_their_scratch_is_reused_with_other_shapes(channels):
    rng = np.random.default_rng(0)
    geometry = Conv2dGeometry(padding=((1, 1), (1, 1)))
    x = rng.standard_normal((5, channels, 9, 7))
    w, b = rng.standard_normal((4, channels, 3, 3)), rng.standard_normal(4)
    gy = rng.standard_normal((5, 4, 9, 7))
    first = _conv_results(x, w, b, gy, geometry)
    # dirty every buffer with another geometry, dtype and values, then repeat the first convolution
    other = Conv2dGeometry(stride=(2, 2), padding=((2, 2), (0, 0)))
    _conv_results(rng.standard_normal((7, 16, 11, 12)).astype(np.float32) * 1e3,
                  rng.standard_normal((6, 16, 3, 3)).astype(np.float32), rng.standard_normal(6).astype(np.float32),
                  rng.standard_normal((7, 6, 7, 5)).astype(np.float32), other)
    for before, after in zip(first, _conv_results(x, w, b, gy, geometry)):
        np.testing.assert_array_equal(before, after)
    reference = tinydl.tensor(x)
    direct = F.conv2d(reference, tinydl.tensor(w), tinydl.tensor(b), padding=1).numpy()
    np.testing.assert_allclose(first[0], direct, rtol=1e-12, atol=1e-12)


def test_max_pooling_agrees_when_its_scratch_is_reused():
    rng = np.random.default_rng(1)
    geometry = Pool2dGeometry(kernel_size=(2, 2), stride=(2, 2))
    x = rng.standard_normal((3, 4, 8, 8)).astype(np.float32)
    first = pooling.max_pool2d_forward(x, geometry)
    pooling.max_pool2d_forward(rng.standard_normal((9, 2, 12, 6)).astype(np.float32) + 100,
                               Pool2dGeometry(kernel_size=(3, 3), stride=(1, 1)))
    second = pooling.max_pool2d_forward(x, geometry)
    for before, after in zip(first, second):
        np.testing.assert_array_equal(before, after)
    windows = x.reshape(3, 4, 4, 2, 4, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(first[0], windows)
