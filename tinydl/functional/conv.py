"""2-D convolution, differentiable to any order.

``conv2d`` follows ``torch.nn.functional.conv2d``: NCHW input, weight (O, C/groups, kh, kw), optional bias (O,),
int or pair arguments, ``padding="same"/"valid"``. The maths is in :mod:`tinydl.kernels.conv` (im2col + one matrix
product per chunk of images); this module checks the arguments and wires up the gradients.

A convolution is linear in its input and, separately, in its weight. Write y = conv(x, w). Then

* the input gradient  gx = conv_input_grad(gy, w)  (a transposed convolution) is linear in (gy, w), and
* the weight gradient gw = conv_weight_grad(x, gy)  (a correlation of x with gy) is linear in (x, gy),

and the derivatives of each of these three maps are the other two. So the backward of every one of them is written
with the other two as differentiable Functions, and ``conv2d`` supports ``create_graph=True`` (double backprop,
gradient penalties, ``gradgradcheck``) at no extra cost for ordinary training.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

from ..autograd import Function
from ..kernels.conv import conv2d_forward, conv2d_input_grad, conv2d_weight_grad
from ..kernels.geometry import Conv2dGeometry, pair, window_span
from ..tensor import Tensor
from ._operands import is_float, operands

__all__ = ["conv2d"]


class Conv2d(Function):
    """y[b, o] = bias[o] + sum over (c, i, j) of w[o, c, i, j] x[b, g(o)*Cg + c, oh*sh + i*dh - pt, ow*sw + j*dw - pl];
    gx = conv_input_grad(gy, w), gw = conv_weight_grad(x, gy), gbias = gy summed over (N, OH, OW)."""

    saved_inputs, saves_outputs = (0, 1), False

    name = "conv2d"

    def flops(self, inputs, outputs):
        """2 N Cout Hout Wout (Cin / groups) kh kw, plus the bias addition."""
        return outputs[0].size * (2 * math.prod(inputs[1].shape[1:]) + (len(inputs) == 3))

    def __init__(self, geometry: Conv2dGeometry):
        self.geometry = geometry

    def forward(self, x, weight, bias=None):
        return conv2d_forward(x, weight, bias, self.geometry)

    def backward(self, gy):
        x, weight = self.inputs[0], self.inputs[1]
        needs = self.needs_input_grad
        gx = Conv2dInputGrad(self.geometry, x.shape)(gy, weight) if needs[0] else None
        gw = Conv2dWeightGrad(self.geometry, weight.shape)(x, gy) if needs[1] else None
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, (gy.sum(dim=(0, 2, 3)) if needs[2] else None)


class Conv2dInputGrad(Function):
    """gx = conv_input_grad(gy, w), linear in gy and in w; for an upstream gradient ggx:
    d/dgy = conv2d(ggx, w), d/dw = conv_weight_grad(ggx, gy)."""

    saved_inputs, saves_outputs = None, False

    name = "conv2d_input_grad"

    def flops(self, inputs, outputs):
        """2 N Cout Hout Wout (Cin / groups) kh kw, as the forward without bias."""
        return 2 * inputs[0].size * math.prod(inputs[1].shape[1:])

    def __init__(self, geometry: Conv2dGeometry, input_shape: Sequence[int]):
        self.geometry, self.input_shape = geometry, tuple(input_shape)

    def forward(self, gy, weight):
        return conv2d_input_grad(gy, weight, self.input_shape, self.geometry)

    def backward(self, ggx):
        gy, weight = self.inputs
        needs = self.needs_input_grad
        return (Conv2d(self.geometry)(ggx, weight) if needs[0] else None,
                Conv2dWeightGrad(self.geometry, weight.shape)(ggx, gy) if needs[1] else None)


class Conv2dWeightGrad(Function):
    """gw = conv_weight_grad(x, gy), linear in x and in gy; for an upstream gradient ggw:
    d/dx = conv_input_grad(gy, ggw), d/dgy = conv2d(x, ggw)."""

    saved_inputs, saves_outputs = None, False

    name = "conv2d_weight_grad"

    def flops(self, inputs, outputs):
        """2 N Cout Hout Wout (Cin / groups) kh kw, as the forward without bias."""
        return 2 * inputs[1].size * math.prod(self.weight_shape[1:])

    def __init__(self, geometry: Conv2dGeometry, weight_shape: Sequence[int]):
        self.geometry, self.weight_shape = geometry, tuple(weight_shape)

    def forward(self, x, gy):
        return conv2d_weight_grad(x, gy, self.weight_shape, self.geometry)

    def backward(self, ggw):
        x, gy = self.inputs
        needs = self.needs_input_grad
        return (Conv2dInputGrad(self.geometry, x.shape)(gy, ggw) if needs[0] else None,
                Conv2d(self.geometry)(x, ggw) if needs[1] else None)


def _padding(padding: Any, kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) from an int, a pair, ``"valid"`` (none) or ``"same"`` (output size = input
    size; an odd total goes one more to the bottom/right, as in PyTorch)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding != "same":
            raise ValueError(f"conv2d: padding must be an int, a pair of ints, 'same' or 'valid', got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"conv2d: padding='same' is not supported for strided convolutions (stride={stride})")
        totals = [window_span(k, d) - 1 for k, d in zip(kernel, dilation)]
        return (totals[0] // 2, totals[0] - totals[0] // 2), (totals[1] // 2, totals[1] - totals[1] // 2)
    top, left = pair("conv2d", "padding", padding, minimum=0)
    return (top, top), (left, left)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation) of ``input`` (N, C, H, W) with ``weight`` (O, C/groups, kh, kw), plus
    ``bias`` (O,): the output has shape (N, O, OH, OW) with OH = (H + pt + pb - dh (kh - 1) - 1) // sh + 1."""
    tensors = operands("conv2d", input, weight, *(() if bias is None else (bias,)))
    x, w = tensors[0], tensors[1]
    if x.ndim != 4:
        raise ValueError(f"conv2d: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
    if w.ndim != 4:
        raise ValueError(f"conv2d: expected a 4-D weight (O, C/groups, kh, kw), got shape {tuple(w.shape)}")
    if not is_float(x.dtype):
        raise TypeError(f"conv2d: expected floating-point tensors, got {x.dtype}")
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool):
        raise TypeError(f"conv2d: groups must be an int, got {groups!r}")
    groups = int(groups)
    channels, out_channels = x.shape[1], w.shape[0]
    if groups < 1 or channels % groups or out_channels % groups:
        raise ValueError(f"conv2d: groups={groups} must be positive and divide both the input channels ({channels}, "
                         f"input shape {tuple(x.shape)}) and the output channels ({out_channels}, weight shape "
                         f"{tuple(w.shape)})")
    if w.shape[1] * groups != channels:
        raise ValueError(f"conv2d: input of shape {tuple(x.shape)} has {channels} channels, but weight of shape "
                         f"{tuple(w.shape)} with groups={groups} expects {w.shape[1] * groups} "
                         f"(weight.shape[1] x groups)")
    if bias is not None and tuple(tensors[2].shape) != (out_channels,):
        raise ValueError(f"conv2d: bias of shape {tuple(tensors[2].shape)} does not fit weight of shape "
                         f"{tuple(w.shape)} (expected ({out_channels},))")
    kernel = (w.shape[2], w.shape[3])
    stride = pair("conv2d", "stride", stride, minimum=1)
    dilation = pair("conv2d", "dilation", dilation, minimum=1)
    geometry = Conv2dGeometry(stride, _padding(padding, kernel, stride, dilation), dilation, groups)
    geometry.output_size(x.shape[2], x.shape[3], kernel)  # raises when the kernel does not fit
    return Conv2d(geometry)(*tensors)
