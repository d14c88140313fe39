"""conv2d: the kernels against loop references (forward and both gradients, across chunk sizes), PyTorch as an
oracle for values, gradients and second derivatives, gradients only where asked for, dtypes, and bad input."""
import itertools
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinydl
from tinydl import Tensor
from tinydl.functional import conv as conv_module
from tinydl.functional.conv import conv2d
from tinydl.kernels import chunking
from tinydl.kernels import conv as conv_kernels
from tinydl.kernels.conv import conv2d_forward, conv2d_input_grad, conv2d_weight_grad
from tinydl.kernels.geometry import Conv2dGeometry

from catalogue.conv import conv2d_arguments, conv2d_reference


def geometry_of(input_shape, weight_shape, kwargs):
    """The kernel-level geometry of a conv2d call, built independently of tinydl's argument parsing."""
    (kh, kw), pair = weight_shape[2:], (lambda v: tuple(v) if isinstance(v, tuple) else (v, v))
    (dh, dw) = pair(kwargs["dilation"])
    if kwargs["padding"] == "same":
        totals = dh * (kh - 1), dw * (kw - 1)
        padding = tuple((t // 2, t - t // 2) for t in totals)
    elif kwargs["padding"] == "valid":
        padding = ((0, 0), (0, 0))
    else:
        padding = tuple((p, p) for p in pair(kwargs["padding"]))
    return Conv2dGeometry(pair(kwargs["stride"]), padding, (dh, dw), kwargs["groups"])


def gradients_reference(x, weight, grad_output, geometry):
    """gx and gw by the chain rule applied entry by entry: every product in the forward sum sends
    gy * w to x and gy * x to w."""
    (top, _), (left, _) = geometry.padding
    (sh, sw), (dh, dw) = geometry.stride, geometry.dilation
    out_channels, per_group, kh, kw = weight.shape
    out_per_group = out_channels // geometry.groups
    gx, gw = np.zeros(x.shape), np.zeros(weight.shape)
    batch, _, out_h, out_w = grad_output.shape
    for b, o, p, q, c, i, j in itertools.product(range(batch), range(out_channels), range(out_h), range(out_w),
                                                 range(per_group), range(kh), range(kw)):
        row, column = p * sh + i * dh - top, q * sw + j * dw - left
        if 0 <= row < x.shape[2] and 0 <= column < x.shape[3]:
            channel = (o // out_per_group) * per_group + c
            gx[b, channel, row, column] += grad_output[b, o, p, q] * weight[o, c, i, j]
            gw[o, c, i, j] += grad_output[b, o, p, q] * x[b, channel, row, column]
    return gx, gw


@pytest.mark.parametrize("planar_channels", [0, 10**6], ids=["channels-last", "planar"])
@settings(max_examples=25, deadline=None)
@given(arguments=conv2d_arguments(max_side=6), batch=st.integers(1, 3), seed=st.integers(0, 2**31),
       budget=st.sampled_from([1, chunking.CPU_CHUNK_BYTES]))
def test_kernels_match_the_loop_references(planar_channels, arguments, batch, seed, budget):
    """With a budget of 1 byte every image is its own chunk; with the default the small batch is one chunk. Each
    case runs with im2col's patches in the channels-last layout, and in the planar one wherever it applies (one
    group), whatever the channel count."""
    with mock.patch.object(chunking, "CPU_CHUNK_BYTES", budget), \
            mock.patch.object(conv_kernels, "PLANAR_FORWARD_CHANNELS", planar_channels), \
            mock.patch.object(conv_kernels, "PLANAR_WEIGHT_GRAD_CHANNELS", planar_channels):
        check_against_references(arguments, batch, seed)


def check_against_references(arguments, batch, seed):
    input_shape, weight_shape, kwargs = arguments
    input_shape = (batch,) + input_shape[1:]
    rng = np.random.default_rng(seed)
    x, weight = rng.standard_normal(input_shape), rng.standard_normal(weight_shape)
    bias = rng.standard_normal(weight_shape[0])
    geometry = geometry_of(input_shape, weight_shape, kwargs)
    y = conv2d_forward(x, weight, bias, geometry)
    np.testing.assert_allclose(y, conv2d_reference(x, weight, bias, **kwargs), rtol=1e-10, atol=1e-10)
    grad_output = rng.standard_normal(y.shape)
    gx, gw = gradients_reference(x, weight, grad_output, geometry)
    np.testing.assert_allclose(conv2d_input_grad(grad_output, weight, x.shape, geometry), gx, rtol=1e-10,
                               atol=1e-10)
    np.testing.assert_allclose(conv2d_weight_grad(x, grad_output, weight.shape, geometry), gw, rtol=1e-10,
                               atol=1e-10)


torch = pytest.importorskip("torch")

ORACLE_CASES = [  # (input shape, weight shape, keyword arguments)
    ((2, 3, 8, 8), (4, 3, 3, 3), dict(padding=1)),
    ((3, 4, 9, 7), (6, 2, 3, 2), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)),
    ((1, 6, 7, 7), (6, 1, 3, 3), dict(stride=2, groups=6)),
    ((2, 2, 6, 5), (3, 2, 4, 2), dict(padding="same", dilation=2)),
    ((2, 2, 6, 5), (3, 2, 2, 3), dict(padding="valid", stride=3)),
    ((5, 3, 11, 10), (8, 3, 5, 5), dict(stride=2, padding=2)),
    ((13, 64, 16, 16), (128, 64, 3, 3), dict(padding=1)),  # the CNN's 2nd layer: 2-3 chunks, the last partial
    ((4, 3, 32, 32), (64, 3, 3, 3), dict(padding=1)),      # the CNN's first layer
]


@pytest.mark.parametrize("input_shape, weight_shape, kwargs", ORACLE_CASES)
@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-10), (np.float32, 2e-4)])
def test_values_and_gradients_match_pytorch(input_shape, weight_shape, kwargs, dtype, tolerance):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(dtype) for s in (input_shape, weight_shape, weight_shape[:1])]
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = conv2d(*ours, **kwargs)
    expected = torch.nn.functional.conv2d(*theirs, **kwargs)
    assert y.dtype == dtype
    scale = max(1.0, float(np.abs(expected.detach().numpy()).max()))  # Winograd's float32 error scales with it
    np.testing.assert_allclose(y.numpy(), expected.detach().numpy(), rtol=tolerance, atol=tolerance * scale)
    grad_output = rng.standard_normal(y.shape).astype(dtype)
    y.backward(Tensor(grad_output))
    expected.backward(torch.tensor(grad_output))
    for name, mine, reference in zip(["input", "weight", "bias"], ours, theirs):
        assert mine.grad.dtype == dtype, name
        scale = max(1.0, float(np.abs(reference.grad.numpy()).max()))
        np.testing.assert_allclose(mine.grad.numpy(), reference.grad.numpy(), rtol=tolerance,
                                   atol=tolerance * scale, err_msg=name)


@pytest.mark.parametrize("input_shape, weight_shape, kwargs", ORACLE_CASES[:4])
def test_second_derivatives_match_pytorch(input_shape, weight_shape, kwargs):
    """d/d(x, w) of |grad_w L|^2 + |grad_x L|^2 with L = <conv2d(x, w), v>: double backprop through both
    gradient Functions."""
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s) for s in (input_shape, weight_shape)]
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y_ours, y_theirs = conv2d(*ours, **kwargs), torch.nn.functional.conv2d(*theirs, **kwargs)
    direction = rng.standard_normal(y_ours.shape)
    grads = tinydl.grad((y_ours * Tensor(direction)).sum(), ours, create_graph=True)
    expected = torch.autograd.grad((y_theirs * torch.tensor(direction)).sum(), theirs, create_graph=True)
    penalty = sum((g * g).sum() for g in grads)
    penalty.backward()
    sum((g * g).sum() for g in expected).backward()
    for mine, reference in zip(ours, theirs):
        np.testing.assert_allclose(mine.grad.numpy(), reference.grad.numpy(), rtol=1e-9, atol=1e-9)


def test_no_input_gradient_is_computed_for_an_input_that_needs_none(monkeypatch):
    calls = []
    real = conv_module.conv2d_input_grad
    monkeypatch.setattr(conv_module, "conv2d_input_grad", lambda *args: calls.append(1) or real(*args))
    rng = np.random.default_rng(2)
    images = Tensor(rng.standard_normal((2, 3, 6, 6)))
    weight = Tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    conv2d(images, weight, padding=1).sum().backward()
    assert calls == [] and weight.grad is not None and images.grad is None
    hidden = Tensor(rng.standard_normal((2, 3, 6, 6)), requires_grad=True)
    conv2d(hidden, weight, padding=1).sum().backward()
    assert calls == [1] and hidden.grad is not None


def test_an_empty_batch_gives_an_empty_output_and_zero_weight_gradient():
    weight = Tensor(np.ones((2, 3, 3, 3)), requires_grad=True)
    y = conv2d(Tensor(np.zeros((0, 3, 5, 5))), weight)
    assert y.shape == (0, 2, 3, 3)
    y.sum().backward()
    np.testing.assert_array_equal(weight.grad.numpy(), np.zeros((2, 3, 3, 3)))


def x_w(input_shape=(2, 4, 6, 6), weight_shape=(6, 4, 3, 3)):
    return Tensor(np.zeros(input_shape, np.float32)), Tensor(np.zeros(weight_shape, np.float32))


@pytest.mark.parametrize("call, error, pieces", [
    (lambda: conv2d(*x_w((4, 6, 6), (6, 4, 3, 3))), ValueError, ["conv2d", "4-D input", "(4, 6, 6)"]),
    (lambda: conv2d(*x_w((2, 4, 6, 6), (6, 4, 3))), ValueError, ["conv2d", "4-D weight", "(6, 4, 3)"]),
    (lambda: conv2d(*x_w((2, 5, 6, 6))), ValueError, ["conv2d", "(2, 5, 6, 6)", "(6, 4, 3, 3)", "5 channels"]),
    (lambda: conv2d(*x_w((2, 4, 6, 6), (6, 2, 3, 3)), groups=3), ValueError, ["conv2d", "groups=3", "divide"]),
    (lambda: conv2d(*x_w((2, 4, 6, 6), (6, 4, 3, 3)), groups=0), ValueError, ["conv2d", "groups=0"]),
    (lambda: conv2d(*x_w((2, 4, 2, 6))), ValueError, ["conv2d", "larger than the padded input", "2x6"]),
    (lambda: conv2d(*x_w((2, 4, 4, 4)), dilation=2), ValueError, ["conv2d", "dilated to 5x5", "4x4"]),
    (lambda: conv2d(*x_w(), stride=0), ValueError, ["conv2d", "stride", "positive", "0"]),
    (lambda: conv2d(*x_w(), stride=(1, -2)), ValueError, ["conv2d", "stride", "(1, -2)"]),
    (lambda: conv2d(*x_w(), stride=1.5), TypeError, ["conv2d", "stride", "1.5"]),
    (lambda: conv2d(*x_w(), stride=(1, 2, 3)), TypeError, ["conv2d", "stride", "(1, 2, 3)"]),
    (lambda: conv2d(*x_w(), padding=-1), ValueError, ["conv2d", "padding", "-1"]),
    (lambda: conv2d(*x_w(), padding="full"), ValueError, ["conv2d", "padding", "'full'"]),
    (lambda: conv2d(*x_w(), padding="same", stride=2), ValueError, ["conv2d", "same", "strided", "(2, 2)"]),
    (lambda: conv2d(*x_w(), dilation=0), ValueError, ["conv2d", "dilation", "0"]),
    (lambda: conv2d(*x_w(), Tensor(np.zeros(5, np.float32))), ValueError, ["conv2d", "bias", "(5,)", "(6,)"]),
    (lambda: conv2d(x_w()[0], Tensor(np.zeros((6, 4, 3, 3)))), TypeError, ["conv2d", "float32", "float64"]),
])
def test_bad_input_raises_an_error_naming_the_op_and_the_values(call, error, pieces):
    with pytest.raises(error) as raised:
        call()
    for piece in pieces:
        assert piece in str(raised.value), (piece, str(raised.value))
