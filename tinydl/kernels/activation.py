"""GELU on raw arrays: the plain array-module path and, for CuPy arrays with fusion on, the fused CUDA kernel.

    y = x Phi(x),                Phi(x) = (1 + erf(x / sqrt 2)) / 2
    dx = gy (Phi(x) + x phi(x)),  phi(x) = e^(-x^2/2) / sqrt(2 pi)

The plain forward is :func:`tinydl.kernels.special.gelu_and_slope` (blocked, so its passes stay in the cache),
which also returns dy/dx = Phi(x) + x phi(x); the plain backward is then the one product gy dy/dx.
"""
from __future__ import annotations

from typing import Any

from .cuda import activation as fused
from .cuda.build import can_fuse
from .special import gelu_and_slope

__all__ = ["gelu_forward", "gelu_backward"]


def gelu_forward(x: Any) -> tuple[Any, Any]:
    """(y, dy/dx); the fused kernel returns (y, None), since its backward recomputes the derivative from x."""
    if can_fuse(x):
        return fused.gelu_forward(x), None
    return gelu_and_slope(x)


def gelu_backward(x: Any, grad_output: Any, slope: Any = None) -> Any:
    """dx = gy (Phi(x) + x phi(x)); the plain path uses ``slope`` = dy/dx from the forward when given."""
    if can_fuse(x, grad_output):
        return fused.gelu_backward(x, grad_output)
    if slope is None:
        slope = gelu_and_slope(x)[1]
    return grad_output * slope
