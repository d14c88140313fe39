"""Inverted dropout: zero each element with probability p and scale the survivors by 1 / (1 - p), so that the
expected value of every element is unchanged and evaluation needs no rescaling."""
from __future__ import annotations

import numbers

from ..autograd import Function
from ..backend import device_of, get_array_module
from ..costs import elementwise
from ..creation import default_generator
from ..kernels.cuda.build import can_fuse
from ..kernels.cuda.dropout import dropout_forward as fused_dropout
from ..tensor import Tensor
from .elementwise import constant

__all__ = ["dropout"]


class Dropout(Function):
    """y = x * m with m_i = [u_i >= p] / (1 - p), u_i uniform in [0, 1) from the device's default generator
    (one draw per call);  dx = gy * m."""

    saved_inputs, saves_outputs = (), False
    flops = elementwise(3)  # compare, scale, multiply

    def __init__(self, p: float):
        self.p = p

    def forward(self, x):
        xp = get_array_module(x)
        uniform = default_generator(device_of(x)).random(x.shape, dtype=xp.float32)
        if can_fuse(x):  # mask and output in one CUDA kernel
            y, self.mask = fused_dropout(x, uniform, self.p)
            return y
        self.mask = xp.multiply(uniform >= self.p, 1 / (1 - self.p), dtype=x.dtype)
        return x * self.mask

    def backward(self, gy):
        return gy * constant(self.mask)


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout with drop probability ``p`` when ``training``; the input itself otherwise (and for
    p = 0); zeros for p = 1."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: the drop probability p must be a number in [0, 1], got {p!r}")
    if not isinstance(input, Tensor):
        raise TypeError(f"dropout: expected the input to be a Tensor, got {type(input).__name__}")
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0.0
    return Dropout(float(p))(input)
