"""Pooling: ties route the gradient to one element (PyTorch's choice), NaN propagates, the kernels match the loop
references in both the tiling fast case and the general one, PyTorch agrees, and bad input is named."""
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinydl
from tinydl import Tensor
from tinydl.functional import pooling as pooling_module
from tinydl.functional.pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from tinydl.kernels import chunking

from catalogue.pooling import avg_pool2d_reference, max_pool2d_reference, pool_arguments


def max_pool_gradient_reference(x, grad_output, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Each window's gradient goes to the first (row-major) position holding the window's maximum."""
    from catalogue.pooling import _windows
    grad = np.zeros(x.shape)
    for (b, c, oh, ow, rows, columns, _, _), _shape in _windows(x, kernel_size, stride, padding, ceil_mode):
        positions = [(r, q) for r in rows for q in columns]
        best = max(positions, key=lambda p: (x[b, c, p[0], p[1]], -positions.index(p)))
        grad[b, c, best[0], best[1]] += grad_output[b, c, oh, ow]
    return grad


@settings(max_examples=40, deadline=None)
@given(arguments=pool_arguments(), seed=st.integers(0, 2**31), levels=st.sampled_from([3, 1000]),
       budget=st.sampled_from([1, chunking.CPU_CHUNK_BYTES]))
def test_max_pool_matches_the_references_even_with_many_ties(arguments, seed, levels, budget):
    """Values drawn from only 3 levels make ties the rule; the gradient must still go to one element."""
    shape, kwargs = arguments
    rng = np.random.default_rng(seed)
    x = Tensor(rng.integers(0, levels, shape).astype(np.float64), requires_grad=True)
    with mock.patch.object(chunking, "CPU_CHUNK_BYTES", budget):
        y = max_pool2d(x, **kwargs)
        np.testing.assert_array_equal(y.numpy(), max_pool2d_reference(x.numpy(), **kwargs))
        grad_output = rng.standard_normal(y.shape)
        y.backward(Tensor(grad_output))
    np.testing.assert_allclose(x.grad.numpy(), max_pool_gradient_reference(x.numpy(), grad_output, **kwargs),
                               rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(arguments=pool_arguments(), seed=st.integers(0, 2**31), include_pad=st.booleans())
def test_avg_pool_gradient_is_the_transpose_of_the_forward(arguments, seed, include_pad):
    """<avg(x), v> = <x, avg_backward(v)>: checked with the loop reference as the forward."""
    shape, kwargs = arguments
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal(shape), requires_grad=True)
    y = avg_pool2d(x, count_include_pad=include_pad, **kwargs)
    np.testing.assert_allclose(y.numpy(), avg_pool2d_reference(x.numpy(), count_include_pad=include_pad, **kwargs),
                               rtol=1e-12, atol=1e-12)
    direction = rng.standard_normal(y.shape)
    y.backward(Tensor(direction))
    assert np.vdot(y.numpy(), direction) == pytest.approx(np.vdot(x.numpy(), x.grad.numpy()), rel=1e-10, abs=1e-10)


def test_a_window_of_equal_values_sends_its_whole_gradient_to_its_first_element():
    x = Tensor(np.zeros((1, 1, 4, 6)), requires_grad=True)
    max_pool2d(x, 2).sum().backward()
    expected = np.zeros((4, 6))
    expected[0::2, 0::2] = 1
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], expected)


def test_overlapping_windows_with_ties_accumulate_one_share_per_window():
    x = Tensor(np.array([[[[1.0, 5.0, 5.0, 5.0, 1.0]]]]), requires_grad=True)
    max_pool2d(x, (1, 3), stride=1).sum().backward()   # windows [1 5 5], [5 5 5], [5 5 1]: first 5 each time
    np.testing.assert_array_equal(x.grad.numpy()[0, 0, 0], [0, 2, 1, 0, 0])


def test_nan_propagates_through_max_pooling_and_takes_the_gradient():
    x = Tensor(np.array([[[[1.0, np.nan], [3.0, 2.0]]]]), requires_grad=True)
    y = max_pool2d(x, 2)
    assert np.isnan(y.item())
    y.backward(Tensor(np.ones((1, 1, 1, 1))))
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[0, 1], [0, 0]])


def test_no_argmax_is_kept_when_no_gradient_is_needed(monkeypatch):
    seen = []
    real = pooling_module.max_pool2d_forward
    monkeypatch.setattr(pooling_module, "max_pool2d_forward",
                        lambda x, geometry, with_argmax: seen.append(with_argmax) or real(x, geometry, with_argmax))
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 4, 4)))
    max_pool2d(x, 2)
    with tinydl.no_grad():
        max_pool2d(Tensor(x.numpy(), requires_grad=True), 2)
    max_pool2d(Tensor(x.numpy(), requires_grad=True), 2)
    assert seen == [False, False, True]


torch = pytest.importorskip("torch")

POOL_CASES = [  # (input shape, keyword arguments)
    ((8, 64, 32, 32), dict(kernel_size=2)),                # the CNN's first pooling: windows tile the input
    ((3, 4, 9, 7), dict(kernel_size=3, stride=2, padding=1)),
    ((2, 3, 8, 9), dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 0), ceil_mode=True)),
    ((2, 3, 7, 7), dict(kernel_size=2, stride=3, ceil_mode=True)),
    ((2, 2, 5, 6), dict(kernel_size=3, stride=1, padding=1)),
]


@pytest.mark.parametrize("shape, kwargs", POOL_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pooling_matches_pytorch(shape, kwargs, dtype):
    rng = np.random.default_rng(0)
    data = np.maximum(rng.standard_normal(shape), 0).astype(dtype)  # as after a ReLU: many tied zeros
    grad_output_shape = torch.nn.functional.max_pool2d(torch.tensor(data), **kwargs).shape
    grad_output = rng.standard_normal(grad_output_shape).astype(dtype)
    for ours_op, theirs_op, extra in [(max_pool2d, torch.nn.functional.max_pool2d, {}),
                                      (avg_pool2d, torch.nn.functional.avg_pool2d, {"count_include_pad": False}),
                                      (avg_pool2d, torch.nn.functional.avg_pool2d, {})]:
        x, reference = Tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
        y, expected = ours_op(x, **kwargs, **extra), theirs_op(reference, **kwargs, **extra)
        assert y.dtype == dtype
        np.testing.assert_allclose(y.numpy(), expected.detach().numpy(), rtol=1e-6, atol=1e-6)
        y.backward(Tensor(grad_output))
        expected.backward(torch.tensor(grad_output))
        assert x.grad.dtype == dtype
        np.testing.assert_allclose(x.grad.numpy(), reference.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape, output_size", [((2, 3, 7, 9), (3, 4)), ((1, 2, 5, 5), 1), ((2, 1, 4, 6), (None, 4)),
                                                ((1, 1, 3, 2), (5, 7))])
def test_adaptive_avg_pool_matches_pytorch(shape, output_size):
    data = np.random.default_rng(0).standard_normal(shape)
    x, reference = Tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    y, expected = adaptive_avg_pool2d(x, output_size), torch.nn.functional.adaptive_avg_pool2d(reference, output_size)
    np.testing.assert_allclose(y.numpy(), expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    (y * y).sum().backward()
    (expected * expected).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), reference.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_second_derivative_through_max_pooling_matches_pytorch():
    """d/dx of |d<maxpool(x)^2, 1>/dx|^2 exercises the scatter's backward (the gather)."""
    data = np.random.default_rng(3).standard_normal((2, 2, 6, 6))
    x, reference = Tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    (grad,) = tinydl.grad((max_pool2d(x, 3, 2, 1) ** 2).sum(), x, create_graph=True)
    (expected,) = torch.autograd.grad((torch.nn.functional.max_pool2d(reference, 3, 2, 1) ** 2).sum(), reference,
                                      create_graph=True)
    (grad * grad).sum().backward()
    (expected * expected).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), reference.grad.numpy(), rtol=1e-12, atol=1e-12)


def image(shape=(2, 3, 6, 6), dtype=np.float32):
    return Tensor(np.zeros(shape, dtype))


@pytest.mark.parametrize("call, error, pieces", [
    (lambda: max_pool2d(image((3, 6, 6)), 2), ValueError, ["max_pool2d", "4-D input", "(3, 6, 6)"]),
    (lambda: avg_pool2d(image((1, 2, 3, 6, 6)), 2), ValueError, ["avg_pool2d", "4-D input", "(1, 2, 3, 6, 6)"]),
    (lambda: adaptive_avg_pool2d(image((6, 6)), 2), ValueError, ["adaptive_avg_pool2d", "4-D input", "(6, 6)"]),
    (lambda: max_pool2d(image(), 0), ValueError, ["max_pool2d", "kernel_size", "0"]),
    (lambda: max_pool2d(image(), 2, stride=(0, 1)), ValueError, ["max_pool2d", "stride", "(0, 1)"]),
    (lambda: max_pool2d(image(), 2, padding=-1), ValueError, ["max_pool2d", "padding", "-1"]),
    (lambda: max_pool2d(image(), 3, padding=2), ValueError, ["max_pool2d", "padding (2, 2)", "half", "(3, 3)"]),
    (lambda: avg_pool2d(image((1, 1, 2, 6)), 3), ValueError, ["avg_pool2d", "larger than the padded input", "2x6"]),
    (lambda: max_pool2d(image(), 2.5), TypeError, ["max_pool2d", "kernel_size", "2.5"]),
    (lambda: max_pool2d(Tensor(np.zeros((1, 1, 4, 4), np.int64)), 2), TypeError, ["max_pool2d", "int64"]),
    (lambda: adaptive_avg_pool2d(image(), (0, 2)), ValueError, ["adaptive_avg_pool2d", "output_size", "(0, 2)"]),
])
def test_bad_input_raises_an_error_naming_the_op_and_the_values(call, error, pieces):
    with pytest.raises(error) as raised:
        call()
    for piece in pieces:
        assert piece in str(raised.value), (piece, str(raised.value))


def test_windows_of_more_than_256_taps_keep_exact_argmax():
    """uint8 holds the tap index up to 255; larger windows switch to int32."""
    data = np.random.default_rng(4).permutation(2 * 17 * 16).reshape(1, 2, 17, 16).astype(np.float64)
    x = Tensor(data, requires_grad=True)
    max_pool2d(x, (17, 16)).sum().backward()
    expected = (data == data.max(axis=(2, 3), keepdims=True)).astype(np.float64)
    np.testing.assert_array_equal(x.grad.numpy(), expected)
