"""GELU on raw arrays: the plain array-module path and, for CuPy arrays with fusion on, the fused CUDA kernel.

    y = x Phi(x),                Phi(x) = (1 + erf(x / sqrt 2)) / 2
    dx = gy (Phi(x) + x phi(x)),  phi(x) = e^(-x^2/2) / sqrt(2 pi)
"""
from __future__ import annotations

import math
from typing import Any

from ..backend import get_array_module
from .cuda import activation as fused
from .cuda.build import can_fuse
from .special import erf

__all__ = ["gelu_forward", "gelu_backward"]


def gelu_forward(x: Any) -> tuple[Any, Any]:
    """(y, Phi(x)); the fused kernel returns (y, None), since its backward recomputes Phi(x)."""
    if can_fuse(x):
        return fused.gelu_forward(x), None
    cdf = 0.5 * (1 + erf(x * x.dtype.type(1 / math.sqrt(2))))
    return (x * cdf).astype(x.dtype, copy=False), cdf


def gelu_backward(x: Any, grad_output: Any, cdf: Any = None) -> Any:
    """dx = gy (Phi(x) + x phi(x)); the plain path uses ``cdf`` = Phi(x) from the forward when given."""
    if can_fuse(x, grad_output):
        return fused.gelu_backward(x, grad_output)
    xp = get_array_module(x)
    if cdf is None:
        cdf = 0.5 * (1 + erf(x * x.dtype.type(1 / math.sqrt(2))))
    density = xp.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
    return (grad_output * (cdf + x * density)).astype(x.dtype, copy=False)
