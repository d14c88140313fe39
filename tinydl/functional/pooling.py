"""2-D pooling: ``max_pool2d``, ``avg_pool2d`` and ``adaptive_avg_pool2d``, with PyTorch's semantics (NCHW, int or
pair arguments, ``stride`` defaulting to the kernel size, ``ceil_mode``, ``count_include_pad``).

The window loops are in :mod:`tinydl.kernels.pooling`. Every op here is differentiable to any order:

* average pooling is linear, y = A x, so its backward is gx = A^T gy and the backward of *that* is A again;
* max pooling is y = G_m x, where G_m gathers each window's argmax m (fixed by the forward pass). Its backward is the
  scatter gx = G_m^T gy, whose own backward is the gather G_m. (The argmax does not move under an infinitesimal
  change of x, so no other term appears.)
* adaptive average pooling averages over the windows [floor(o H / OH), ceil((o + 1) H / OH)) of each axis, which is
  a product with two small averaging matrices, y = P_H x P_W^T, so it is built from ``matmul``.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from ..autograd import Function
from ..backend import get_array_module
from ..costs import moves_only
from ..kernels.geometry import Pool2dGeometry, pair
from ..kernels.pooling import (avg_pool2d_backward, avg_pool2d_forward, max_pool2d_forward, max_pool2d_gather,
                               max_pool2d_scatter)
from ..tensor import Tensor
from ._device import on_the_inputs_device
from ._operands import is_float
from .linalg import matmul

__all__ = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"]


class MaxPool2d(Function):
    """y = the maximum of each window; gx = the window's gradient at its (first) maximum, zero elsewhere."""

    saved_inputs, saves_outputs = (), False

    name = "max_pool2d"

    def flops(self, inputs, outputs):
        """kh kw comparisons per output."""
        return outputs[0].size * math.prod(self.geometry.kernel_size)

    def __init__(self, geometry: Pool2dGeometry):
        self.geometry = geometry

    def forward(self, x):
        self.input_shape = x.shape
        y, self.argmax = max_pool2d_forward(x, self.geometry, with_argmax=self.needs_input_grad[0])
        return y

    def backward(self, gy):
        return MaxPool2dScatter(self.geometry, self.argmax, self.input_shape)(gy)


class MaxPool2dScatter(Function):
    """gx = G_m^T gy (each window's value sent to its argmax); its adjoint is the gather G_m."""

    saved_inputs, saves_outputs = (), False

    name = "max_pool2d_scatter"

    def flops(self, inputs, outputs):
        """One addition per window gradient."""
        return inputs[0].size

    def __init__(self, geometry: Pool2dGeometry, argmax: Any, input_shape: Sequence[int]):
        self.geometry, self.argmax, self.input_shape = geometry, argmax, tuple(input_shape)

    def forward(self, gy):
        return max_pool2d_scatter(gy, self.argmax, self.input_shape, self.geometry)

    def backward(self, ggx):
        return MaxPool2dGather(self.geometry, self.argmax)(ggx)


class MaxPool2dGather(Function):
    """y = G_m x (each window's value read at its argmax); its adjoint is the scatter G_m^T."""

    saved_inputs, saves_outputs = (), False

    name = "max_pool2d_gather"
    flops = moves_only

    def __init__(self, geometry: Pool2dGeometry, argmax: Any):
        self.geometry, self.argmax = geometry, argmax

    def forward(self, x):
        self.input_shape = x.shape
        return max_pool2d_gather(x, self.argmax, self.geometry)

    def backward(self, gy):
        return MaxPool2dScatter(self.geometry, self.argmax, self.input_shape)(gy)


class AvgPool2d(Function):
    """y = A x (window sums over divisors); gx = A^T gy."""

    saved_inputs, saves_outputs = (), False

    name = "avg_pool2d"

    def flops(self, inputs, outputs):
        """kh kw additions and a division per output."""
        return outputs[0].size * (math.prod(self.geometry.kernel_size) + 1)

    def __init__(self, geometry: Pool2dGeometry, count_include_pad: bool):
        self.geometry, self.count_include_pad = geometry, count_include_pad

    def forward(self, x):
        self.input_shape = x.shape
        return avg_pool2d_forward(x, self.geometry, self.count_include_pad)

    def backward(self, gy):
        return AvgPool2dBackward(self.geometry, self.count_include_pad, self.input_shape)(gy)


class AvgPool2dBackward(Function):
    """gx = A^T gy; its adjoint is A, average pooling itself."""

    saved_inputs, saves_outputs = (), False

    name = "avg_pool2d_backward"

    def flops(self, inputs, outputs):
        """A division per window gradient, then kh kw additions."""
        return inputs[0].size * (math.prod(self.geometry.kernel_size) + 1)

    def __init__(self, geometry: Pool2dGeometry, count_include_pad: bool, input_shape: Sequence[int]):
        self.geometry, self.count_include_pad, self.input_shape = geometry, count_include_pad, tuple(input_shape)

    def forward(self, gy):
        return avg_pool2d_backward(gy, self.input_shape, self.geometry, self.count_include_pad)

    def backward(self, ggx):
        return AvgPool2d(self.geometry, self.count_include_pad)(ggx)


def _check_input(op: str, input: Any) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(input).__name__}")
    if input.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {tuple(input.shape)}")
    if not is_float(input.dtype):
        raise TypeError(f"{op}: expected a floating-point tensor, got {input.dtype}")


def _geometry(op: str, input: Tensor, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool
              ) -> Pool2dGeometry:
    """Checked pooling arguments; ValueError naming ``op`` and the values when they are invalid."""
    _check_input(op, input)
    kernel = pair(op, "kernel_size", kernel_size, minimum=1)
    stride = kernel if stride is None else pair(op, "stride", stride, minimum=1)
    padding = pair(op, "padding", padding, minimum=0)
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel size {kernel}")
    geometry = Pool2dGeometry(kernel, stride, padding, bool(ceil_mode))
    geometry.output_size(input.shape[2], input.shape[3], op)  # raises when no window fits
    return geometry


def max_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False) -> Tensor:
    """The maximum over kh x kw windows (padding counts as -inf); among equal maxima the gradient goes to the
    first in row-major order."""
    return MaxPool2d(_geometry("max_pool2d", input, kernel_size, stride, padding, ceil_mode))(input)


def avg_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """The mean over kh x kw windows; padding counts as zeros, and in the divisor only when
    ``count_include_pad``."""
    geometry = _geometry("avg_pool2d", input, kernel_size, stride, padding, ceil_mode)
    return AvgPool2d(geometry, bool(count_include_pad))(input)


def _averaging_matrix(xp: Any, out_size: int, in_size: int, dtype: Any) -> Any:
    """P (out_size, in_size) with P[o, i] = 1 / (end_o - start_o) for start_o <= i < end_o, where
    start_o = floor(o in / out) and end_o = ceil((o + 1) in / out)."""
    matrix = xp.zeros((out_size, in_size), dtype)
    for o in range(out_size):
        start, end = (o * in_size) // out_size, math.ceil((o + 1) * in_size / out_size)
        matrix[o, start:end] = 1.0 / (end - start)
    return matrix


@on_the_inputs_device
def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """Average pooling to a fixed (OH, OW) output whatever the input size (``None`` keeps an input size)."""
    _check_input("adaptive_avg_pool2d", input)
    sizes = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    sizes = tuple(input.shape[2 + axis] if size is None else size for axis, size in enumerate(sizes))
    out_h, out_w = pair("adaptive_avg_pool2d", "output_size", sizes, minimum=1)
    if input.shape[2] == 0 or input.shape[3] == 0:
        raise ValueError(f"adaptive_avg_pool2d: the input of shape {tuple(input.shape)} has an empty spatial axis")
    xp = get_array_module(input.data)
    rows = Tensor(_averaging_matrix(xp, out_h, input.shape[2], input.dtype))
    columns = Tensor(_averaging_matrix(xp, out_w, input.shape[3], input.dtype).T)
    return matmul(matmul(rows, input), columns)
