"""The kernels' backend seam, tested without a GPU: they take every array function from the module that
get_array_module returns (never from numpy directly), and a non-NumPy module gets the GPU strategy (one chunk)."""
import ast
import pathlib
import types

import numpy as np
import pytest

import tinydl.kernels
from tinydl.kernels import conv, im2col, pooling
from tinydl.kernels.geometry import Conv2dGeometry, Pool2dGeometry

from catalogue.conv import conv2d_reference

KERNELS = pathlib.Path(tinydl.kernels.__file__).parent
MINE = ["chunking.py", "conv.py", "geometry.py", "im2col.py", "pooling.py"]


@pytest.mark.parametrize("name", MINE)
def test_kernel_modules_do_not_import_numpy(name):
    tree = ast.parse((KERNELS / name).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not any(module.split(".")[0] in ("numpy", "cupy") for module in imported), imported


class RecordingModule(types.ModuleType):
    """Looks like CuPy to the kernels (its name), computes with NumPy, and records what it was asked for."""

    def __init__(self):
        super().__init__("cupy")
        self.used = set()

    def __getattr__(self, name):
        self.used.add(name)
        return getattr(np, name)


@pytest.fixture
def gpu_like(monkeypatch):
    module = RecordingModule()
    for kernel_module in (conv, im2col, pooling):
        monkeypatch.setattr(kernel_module, "get_array_module", lambda *arrays: module)
    chunk_sizes = []
    real = conv.batch_chunks

    def recording_chunks(batch, image_bytes, xp):
        parts = list(real(batch, image_bytes, xp))
        chunk_sizes.append([part.stop - part.start for part in parts])
        return parts
    monkeypatch.setattr(conv, "batch_chunks", recording_chunks)
    monkeypatch.setattr(pooling, "batch_chunks", recording_chunks)
    module.chunk_sizes = chunk_sizes
    return module


def test_conv_kernels_use_the_given_module_and_one_chunk(gpu_like):
    rng = np.random.default_rng(0)
    x, weight = rng.standard_normal((9, 4, 6, 6)), rng.standard_normal((6, 2, 3, 3))
    kwargs = dict(stride=(1, 2), padding=(1, 0), dilation=(2, 1), groups=2)
    geometry = Conv2dGeometry((1, 2), ((1, 1), (0, 0)), (2, 1), 2)
    y = conv.conv2d_forward(x, weight, None, geometry)
    np.testing.assert_allclose(y, conv2d_reference(x, weight, **kwargs), rtol=1e-10, atol=1e-10)
    v = rng.standard_normal(y.shape)
    # y is linear in x and in w: <conv(x, w), v> = <x, input_grad(v, w)> = <w, weight_grad(x, v)>
    expected = np.vdot(y, v)
    assert np.vdot(x, conv.conv2d_input_grad(v, weight, x.shape, geometry)) == pytest.approx(expected, rel=1e-10)
    assert np.vdot(weight, conv.conv2d_weight_grad(x, v, weight.shape, geometry)) == pytest.approx(expected,
                                                                                                   rel=1e-10)
    assert {"matmul", "empty", "copyto"} <= gpu_like.used
    assert gpu_like.chunk_sizes == [[9]] * 3


def test_pooling_kernels_use_the_given_module(gpu_like):
    x = np.random.default_rng(1).standard_normal((5, 3, 7, 7))
    geometry = Pool2dGeometry((3, 3), (2, 2), (1, 1), True)
    y, argmax = pooling.max_pool2d_forward(x, geometry)
    pooling.max_pool2d_scatter(y, argmax, x.shape, geometry)
    pooling.avg_pool2d_backward(pooling.avg_pool2d_forward(x, geometry, False), x.shape, geometry, False)
    assert {"copyto", "maximum", "greater", "zeros"} <= gpu_like.used
    assert gpu_like.chunk_sizes == [[5]]
