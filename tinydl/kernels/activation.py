"""ReLU and GELU on raw arrays.

    ReLU:  y = max(x, 0),          dx = gy [x > 0]
    GELU:  y = x Phi(x),           Phi(x) = (1 + erf(x / sqrt 2)) / 2
           dx = gy (Phi(x) + x phi(x)),  phi(x) = e^(-x^2/2) / sqrt(2 pi)

ReLU's passes and GELU's blocks are split across threads on NumPy (:mod:`.threads`). GELU's plain forward is
:func:`tinydl.kernels.special.gelu_and_slope` (blocked, so its passes stay in the cache), which also returns
dy/dx = Phi(x) + x phi(x); the plain backward is then the one product gy dy/dx. For CuPy arrays with fusion on,
GELU is one fused CUDA kernel each way.
"""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from .cuda import activation as fused
from .cuda.build import can_fuse
from .special import gelu_and_slope
from .threads import parallel_for, thread_count

__all__ = ["relu_forward", "relu_backward", "gelu_forward", "gelu_backward"]


def _flat_parts(xp: Any, work: Any, arrays: tuple[Any, ...], bytes_per_item: int) -> None:
    """Run ``work(*flat slices)`` over the flattened C-contiguous ``arrays`` (all of one size), split across
    threads; small arrays, and arrays of another layout, are worked on whole in the calling thread."""
    if thread_count(xp, arrays[0].size, bytes_per_item) < 2 or not all(a.flags.c_contiguous for a in arrays):
        work(*arrays)
        return
    flat = [a.reshape(-1) for a in arrays]
    parallel_for(xp, flat[0].size, lambda part: work(*(a[part] for a in flat)), bytes_per_item)


def relu_forward(x: Any, with_mask: bool) -> tuple[Any, Any]:
    """(y, mask): y = max(x, 0) (NaN stays NaN) and, when ``with_mask``, mask = [x > 0] (else None)."""
    xp = get_array_module(x)
    y = xp.empty(x.shape, x.dtype)
    mask = xp.empty(x.shape, bool) if with_mask else None

    def work(x_part: Any, y_part: Any, *mask_part: Any) -> None:
        if mask_part:
            xp.greater(x_part, 0, out=mask_part[0])
        xp.maximum(x_part, 0, out=y_part)

    _flat_parts(xp, work, (x, y) + ((mask,) if with_mask else ()), 2 * x.itemsize + with_mask)
    return y, mask


def _product(a: Any, b: Any) -> Any:
    """a * b for arrays of one shape, split across threads; the result has ``a``'s dtype."""
    xp = get_array_module(a)
    out = xp.empty(a.shape, a.dtype)
    _flat_parts(xp, lambda left, right, result: xp.multiply(left, right, out=result), (a, b, out),
                2 * a.itemsize + b.itemsize)
    return out


def relu_backward(grad_output: Any, mask: Any) -> Any:
    """dx = gy [x > 0], float times bool in one pass."""
    return _product(grad_output, mask)


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
    if grad_output.shape != slope.shape or grad_output.dtype != slope.dtype:
        return grad_output * slope
    return _product(grad_output, slope)
