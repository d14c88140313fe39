"""Softmax and log-softmax along one axis on raw arrays: the plain array-module path and, for CuPy arrays with
fusion on and the last axis, the fused CUDA row kernels (:mod:`.cuda.softmax`).

With m = max_k x_k (so that exp never overflows) and S = sum_k e^(x_k - m):

    softmax      y = e^(x - m) / S,        dx = y (gy - sum_k gy_k y_k)
    log_softmax  y = x - m - log S,        dx = gy - e^y sum_k gy_k
"""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from .cuda import softmax as fused
from .cuda.build import can_fuse

__all__ = ["softmax_forward", "softmax_backward"]


def _fusable(dim: int, *arrays: Any) -> bool:
    return can_fuse(*arrays) and dim == arrays[0].ndim - 1


def softmax_forward(x: Any, dim: int, log: bool = False) -> Any:
    """softmax (or, with ``log``, log_softmax) of ``x`` along axis ``dim`` (non-negative)."""
    if _fusable(dim, x):
        return fused.log_softmax_forward(x) if log else fused.softmax_forward(x)
    xp = get_array_module(x)
    shifted = x - x.max(axis=dim, keepdims=True)
    if log:
        return shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
    e = xp.exp(shifted, out=shifted)
    e /= e.sum(axis=dim, keepdims=True)
    return e


def softmax_backward(y: Any, grad_output: Any, dim: int, log: bool = False) -> Any:
    """dx from the output ``y`` of :func:`softmax_forward` and the gradient ``grad_output`` of y."""
    if _fusable(dim, y, grad_output):
        return fused.log_softmax_backward(y, grad_output) if log else fused.softmax_backward(y, grad_output)
    xp = get_array_module(y)
    if log:
        return grad_output - xp.exp(y) * grad_output.sum(axis=dim, keepdims=True)
    return y * (grad_output - (grad_output * y).sum(axis=dim, keepdims=True))
