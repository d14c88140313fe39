"""Layer normalisation over the trailing axes on raw arrays: the plain array-module path, blocked by rows, and, for
CuPy arrays with fusion on, the fused CUDA row kernels (:mod:`.cuda.normalization`).

Over the D values of each row (the trailing axes flattened), with means over the row:

    mean = mean(x),   var = mean((x - mean)^2),   s = 1 / sqrt(var + eps),   x_hat = (x - mean) s     (forward)
    dx = s (g - mean(g) - x_hat mean(g x_hat))                                                     (backward)

The plain path works on blocks of rows of about :data:`BLOCK` elements on a CPU (the whole array on a GPU), so
that its passes over a block run in the cache: the memory sees x (or g and x_hat) read once and the result
written once. The row sums are matrix-vector products with a vector of 1/D (BLAS, several times faster than
``mean(axis=-1)`` on short rows), the sums of products ``einsum("ij,ij->i")`` (no temporary). The mean is refined
once by the mean of the residuals x - mean, which removes the rounding error of the first sum: a float32 constant
such as 1e4 + 0.1 then gives x_hat = 0 exactly instead of its rounding error normalised up to +-1.
"""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from .cuda import normalization as fused
from .cuda.build import can_fuse

__all__ = ["layer_norm_forward", "layer_norm_backward"]

BLOCK = 2**18  # elements per block of rows on a CPU: a block and its result (2 x 1 MB) stay in the L3 cache
# (the (32 x 128, 128) rows of the examples' GPT, 1 thread, forward / backward: 0.91 / 0.83 ms in blocks of 2**14
# elements, 0.72 / 0.72 in 2**15, 0.55 / 0.56 in 2**18: each NumPy call costs about a microsecond of its own)


def layer_norm_forward(x: Any, normalized_dims: int, eps: float) -> tuple[Any, Any, Any, Any]:
    """(x_hat, mean, var, inv_std) of normalising ``x`` over its last ``normalized_dims`` axes; the statistics
    have x's shape with those axes kept as size 1 (as ``keepdims=True`` gives)."""
    if can_fuse(x):
        return fused.layer_norm_forward(x, normalized_dims, eps)
    xp = get_array_module(x)
    rows, columns = _as_rows(x, normalized_dims)
    dtype = rows.dtype.type
    x_hat = xp.empty_like(rows)
    mean, var, inv_std = (xp.empty(rows.shape[0], rows.dtype) for _ in range(3))
    averager = xp.full(columns, 1 / columns, rows.dtype)
    for block in _row_blocks(xp, rows):
        centred = x_hat[block]
        block_mean = xp.matmul(rows[block], averager)
        xp.subtract(rows[block], block_mean[:, None], out=centred)
        residual = xp.matmul(centred, averager)              # refines the mean (module docstring)
        centred -= residual[:, None]
        mean[block] = block_mean + residual
        var[block] = xp.einsum("ij,ij->i", centred, centred) * dtype(1 / columns)
        inv_std[block] = 1 / xp.sqrt(var[block] + dtype(eps))
        centred *= inv_std[block][:, None]
    statistics_shape = x.shape[:x.ndim - normalized_dims] + (1,) * normalized_dims
    return (x_hat.reshape(x.shape),) + tuple(s.reshape(statistics_shape) for s in (mean, var, inv_std))


def layer_norm_backward(x_hat: Any, inv_std: Any, grad_output: Any, normalized_dims: int) -> Any:
    """dx = s (g - mean(g) - x_hat mean(g x_hat)) over the last ``normalized_dims`` axes."""
    if can_fuse(x_hat, inv_std, grad_output):
        return fused.layer_norm_backward(x_hat, inv_std, grad_output, normalized_dims)
    xp = get_array_module(x_hat)
    normalised, columns = _as_rows(x_hat, normalized_dims)
    grad, _ = _as_rows(grad_output, normalized_dims)
    scale = -inv_std.reshape(-1)
    dtype = normalised.dtype.type
    averager = xp.full(columns, 1 / columns, normalised.dtype)
    dx = xp.empty_like(normalised)
    for block in _row_blocks(xp, normalised):
        out = dx[block]
        mean_g = xp.matmul(grad[block], averager)
        mean_g_x_hat = xp.einsum("ij,ij->i", grad[block], normalised[block]) * dtype(1 / columns)
        xp.multiply(normalised[block], mean_g_x_hat[:, None], out=out)
        out -= grad[block]
        out += mean_g[:, None]
        out *= scale[block][:, None]                          # -s (x_hat mean(g x_hat) - g + mean(g))
    return dx.reshape(x_hat.shape)


def _as_rows(x: Any, normalized_dims: int) -> tuple[Any, int]:
    """x as a C-contiguous (rows, D) matrix, D the product of its last ``normalized_dims`` extents; and D."""
    columns = 1
    for extent in x.shape[x.ndim - normalized_dims:]:
        columns *= extent
    return get_array_module(x).ascontiguousarray(x).reshape(-1, columns), columns


def _row_blocks(xp: Any, rows: Any) -> list[slice]:
    """Slices of about :data:`BLOCK` elements of whole rows on a CPU; one slice of all rows on a GPU."""
    count, columns = rows.shape
    step = max(1, BLOCK // columns) if xp.__name__ == "numpy" else max(1, count)
    return [slice(start, start + step) for start in range(0, count, step)]
