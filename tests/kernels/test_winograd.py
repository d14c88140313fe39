"""Winograd convolution F(2x2, 3x3) and F(4x4, 3x3): the three kernels against the loop references in float64 (exact
to rounding), the float32 error bound over the catalogue's and the benchmarks' layer shapes, parity with im2col and
PyTorch through conv2d with the algorithm forced, gradcheck and gradgradcheck, the automatic choice, the switch
and its environment variable, and the error for a geometry Winograd cannot compute."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinydl
from tinydl import Tensor
from tinydl.functional.conv import conv2d
from tinydl.gradcheck import gradcheck, gradgradcheck
from tinydl.kernels import conv as conv_kernels
from tinydl.kernels import winograd
from tinydl.kernels.geometry import Conv2dGeometry

from catalogue.conv import conv2d_reference
from kernels.test_conv_kernels import gradients_reference

TILES = [winograd.F2x2_3x3, winograd.F4x4_3x3]
# float32: max |winograd - float64 direct| / max |direct|, inputs and weights N(0, 1): measured 2e-7 to 7e-7 for
# F(2x2, 3x3) (as im2col) and 1e-6 to 1.3e-5 for F(4x4, 3x3) (256 channels); asserted with a margin
FLOAT32_BOUND = {winograd.F2x2_3x3.name: 2e-6, winograd.F4x4_3x3.name: 5e-5}


@pytest.fixture
def algorithm():
    """Force an algorithm for one test; the previous choice is restored afterwards."""
    previous = conv_kernels.get_conv_algorithm()
    yield conv_kernels.set_conv_algorithm
    conv_kernels.set_conv_algorithm(previous)


@st.composite
def winograd_arguments(draw):
    """(input shape, weight shape, padding ((t, b), (l, r))) of a 3x3 stride-1 convolution, padding 0-2 per side."""
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    sides = [draw(st.integers(max(1, 3 - sum(p)), 10)) for p in padding]
    channels, out_channels = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return (draw(st.integers(1, 3)), channels, *sides), (out_channels, channels, 3, 3), padding


@pytest.mark.parametrize("tile", TILES, ids=lambda t: t.name)
@settings(max_examples=15, deadline=None)
@given(arguments=winograd_arguments(), seed=st.integers(0, 2**31))
def test_float64_kernels_match_the_loop_references(tile, arguments, seed):
    input_shape, weight_shape, padding = arguments
    rng = np.random.default_rng(seed)
    x, weight, bias = (rng.standard_normal(s) for s in (input_shape, weight_shape, weight_shape[:1]))
    geometry = Conv2dGeometry(padding=padding)
    reference = conv2d_reference(np.pad(x, ((0, 0), (0, 0), *padding)), weight, bias)
    y = winograd.winograd_forward(x, weight, bias, geometry, tile)
    np.testing.assert_allclose(y, reference, rtol=1e-12, atol=1e-12)
    grad_output = rng.standard_normal(y.shape)
    gx, gw = gradients_reference(x, weight, grad_output, geometry)
    np.testing.assert_allclose(winograd.winograd_input_grad(grad_output, weight, x.shape, geometry, tile), gx,
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(winograd.winograd_weight_grad(x, grad_output, weight.shape, geometry, tile), gw,
                               rtol=1e-12, atol=1e-12)


LAYER_SHAPES = [  # (input shape, out channels): the benchmarks' and examples' 3x3 layers, at small batches
    ((2, 3, 32, 32), 64), ((2, 64, 16, 16), 128), ((2, 16, 32, 32), 16), ((2, 128, 8, 8), 128),
    ((1, 256, 12, 12), 256), ((3, 5, 7, 9), 6),
]


@pytest.mark.parametrize("tile", TILES, ids=lambda t: t.name)
@pytest.mark.parametrize("input_shape, out_channels", LAYER_SHAPES)
def test_float32_error_bound(tile, input_shape, out_channels):
    """Each kernel in float32 against im2col (the plain path) in float64: max error / max |value| within
    FLOAT32_BOUND."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(input_shape)
    weight = rng.standard_normal((out_channels, input_shape[1], 3, 3))
    geometry = Conv2dGeometry(padding=((1, 1), (1, 1)))
    grad_output = rng.standard_normal((input_shape[0], out_channels, *input_shape[2:]))
    pairs = [(winograd.winograd_forward(x.astype(np.float32), weight.astype(np.float32), None, geometry, tile),
              conv_kernels.im2col_forward(x, weight, None, geometry)),
             (winograd.winograd_input_grad(grad_output.astype(np.float32), weight.astype(np.float32), x.shape,
                                           geometry, tile), conv_kernels.im2col_input_grad(grad_output, weight,
                                                                                          x.shape, geometry)),
             (winograd.winograd_weight_grad(x.astype(np.float32), grad_output.astype(np.float32), weight.shape,
                                            geometry, tile), conv_kernels.im2col_weight_grad(x, grad_output,
                                                                                            weight.shape, geometry))]
    for name, (ours, exact) in zip(["forward", "input gradient", "weight gradient"], pairs):
        assert ours.dtype == np.float32, name
        error = float(np.abs(ours - exact).max() / np.abs(exact).max())
        assert error <= FLOAT32_BOUND[tile.name], f"{tile.name} {name}: relative error {error:.2e}"


@pytest.mark.parametrize("forced", ["winograd", "winograd2x2"])
def test_conv2d_forced_to_winograd_matches_im2col_and_gradchecks(algorithm, forced):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s) for s in ((2, 3, 7, 6), (4, 3, 3, 3), (4,))]

    def run(name):
        algorithm(name)
        inputs = [Tensor(a, requires_grad=True) for a in arrays]
        y = conv2d(*inputs, padding=(1, 2))
        (y * y).sum().backward()
        return [y.numpy()] + [t.grad.numpy() for t in inputs]

    for ours, reference in zip(run(forced), run("im2col")):
        np.testing.assert_allclose(ours, reference, rtol=1e-11, atol=1e-11)
    algorithm(forced)
    inputs = [Tensor(a, requires_grad=True) for a in arrays]
    assert gradcheck(lambda *t: conv2d(*t, padding=1), inputs)
    assert gradgradcheck(lambda x, w, b: conv2d(x, w, b, padding="same"), inputs)


def test_the_automatic_choice_takes_winograd_where_it_pays(algorithm, monkeypatch):
    monkeypatch.setattr(conv_kernels, "blas_threads", lambda: 1)
    calls = []
    real = conv_kernels.winograd_forward
    monkeypatch.setattr(conv_kernels, "winograd_forward", lambda *args: calls.append(args[1].shape) or real(*args))
    algorithm("auto")
    rng = np.random.default_rng(4)
    for channels, out_channels, side in [(64, 128, 16), (3, 64, 32), (64, 64, 4)]:
        x = Tensor(rng.standard_normal((1, channels, side, side)).astype(np.float32))
        conv2d(x, Tensor(rng.standard_normal((out_channels, channels, 3, 3)).astype(np.float32)), padding=1)
    conv2d(Tensor(np.ones((1, 16, 20, 20))), Tensor(np.ones((16, 16, 3, 3))), stride=2)  # unsupported: im2col
    assert calls == [(128, 64, 3, 3)]
    assert conv_kernels.winograd_pays(np, 64, 128, 16, 16) and not conv_kernels.winograd_pays(np, 3, 64, 32, 32)
    assert not conv_kernels.winograd_pays(np, 64, 128, 16, 16, threads=2)


def test_the_blas_thread_count_is_read_from_the_environment(monkeypatch):
    for variable in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert conv_kernels.blas_threads() == 3
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert conv_kernels.blas_threads() == 1


@pytest.mark.parametrize("kwargs, weight_shape, named", [
    (dict(stride=2, padding=1), (4, 3, 3, 3), r"stride \(2, 2\)"),
    (dict(dilation=2, padding=2), (4, 3, 3, 3), r"dilation \(2, 2\)"),
    (dict(padding=2), (4, 3, 5, 5), r"kernel 5x5"),
    (dict(groups=3, padding=1), (3, 1, 3, 3), r"groups=3"),
])
def test_forcing_winograd_on_an_unsupported_convolution_names_its_geometry(algorithm, kwargs, weight_shape, named):
    algorithm("winograd")
    x = Tensor(np.ones((1, 3, 9, 9)))
    with pytest.raises(ValueError, match=r"conv2d: .*forced to 'winograd'.*input shape \(1, 3, 9, 9\).*" + named):
        conv2d(x, Tensor(np.ones(weight_shape)), **kwargs)


def test_an_unknown_algorithm_is_refused(algorithm):
    with pytest.raises(ValueError, match="unknown convolution algorithm 'fft'.*auto, im2col, winograd"):
        algorithm("fft")


def test_the_environment_variable_chooses_the_algorithm():
    root = Path(__file__).resolve().parents[2]
    script = "from tinydl.kernels.conv import get_conv_algorithm; print(get_conv_algorithm())"
    environment = dict(os.environ, PYTHONPATH=str(root))
    environment.pop("TINYDL_CONV_ALGORITHM", None)
    done = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True)
    assert done.stdout.strip() == "im2col", done.stderr      # the default
    environment["TINYDL_CONV_ALGORITHM"] = "auto"
    done = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True)
    assert done.stdout.strip() == "auto", done.stderr
    environment["TINYDL_CONV_ALGORITHM"] = "bogus"
    done = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True)
    assert done.returncode != 0 and "TINYDL_CONV_ALGORITHM" in done.stderr


@pytest.mark.parametrize("forced", ["winograd", "winograd2x2"])
def test_forced_winograd_matches_pytorch(algorithm, forced):
    """The CNN's second layer at batch 3, float32, values and all three gradients."""
    torch = pytest.importorskip("torch")
    algorithm(forced)
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((3, 64, 16, 16), (128, 64, 3, 3), (128,))]
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, expected = conv2d(*ours, padding=1), torch.nn.functional.conv2d(*theirs, padding=1)
    bound = FLOAT32_BOUND[winograd.F4x4_3x3.name]
    scale = float(np.abs(expected.detach().numpy()).max())
    np.testing.assert_allclose(y.numpy(), expected.detach().numpy(), atol=bound * scale)
    grad_output = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(Tensor(grad_output))
    expected.backward(torch.tensor(grad_output))
    for mine, reference in zip(ours, theirs):
        scale = float(np.abs(reference.grad.numpy()).max())
        np.testing.assert_allclose(mine.grad.numpy(), reference.grad.numpy(), atol=bound * scale)
