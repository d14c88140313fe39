"""GELU on raw arrays: the plain array-module path and, for CuPy arrays with fusion on, the fused CUDA kernel.

    y = x Phi(x),                Phi(x) = (1 + erf(x / sqrt 2)) / 2
    dx = gy (Phi(x) + x phi(x)),  phi(x) = e^(-x^2/2) / sqrt(2 pi)

The plain forward is :func:`tinydl.kernels.special.gelu_and_cdf` (blocked, so its passes stay in the cache); the
plain backward works in one scratch array of x's size.
"""
from __future__ import annotations

import math
from typing import Any

from ..backend import get_array_module
from .cuda import activation as fused
from .cuda.build import can_fuse
from .special import gelu_and_cdf

__all__ = ["gelu_forward", "gelu_backward"]


def gelu_forward(x: Any) -> tuple[Any, Any]:
    """(y, Phi(x)); the fused kernel returns (y, None), since its backward recomputes Phi(x)."""
    if can_fuse(x):
        return fused.gelu_forward(x), None
    return gelu_and_cdf(x)


def gelu_backward(x: Any, grad_output: Any, cdf: Any = None) -> Any:
    """dx = gy (Phi(x) + x phi(x)); the plain path uses ``cdf`` = Phi(x) from the forward when given."""
    if can_fuse(x, grad_output):
        return fused.gelu_backward(x, grad_output)
    xp = get_array_module(x)
    if cdf is None:
        cdf = gelu_and_cdf(x)[1]
    # in one scratch array: t = x^2, t = e^(-t/2) / sqrt(2 pi) = phi(x), t *= x, t += Phi, t *= gy
    slope = xp.multiply(x, x, out=xp.empty_like(x))             # an array also when x is 0-d
    slope *= x.dtype.type(-0.5)
    xp.exp(slope, out=slope)
    slope *= x.dtype.type(1 / math.sqrt(2 * math.pi))
    slope *= x
    slope += cdf
    slope *= grad_output
    return slope
