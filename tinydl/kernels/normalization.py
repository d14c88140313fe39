"""Layer normalisation over the trailing axes on raw arrays: the plain array-module path, blocked by rows, and, for
CuPy arrays with fusion on, the fused CUDA row kernels (:mod:`.cuda.normalization`).

Over the D values of each row (the trailing axes flattened), with means over the row:

    mean = mean(x),   var = mean((x - mean)^2),   s = 1 / sqrt(var + eps),   x_hat = (x - mean) s,
    y = x_hat weight + bias                                                                           (forward)
    g_hat = g weight,   dx = s (g_hat - mean(g_hat) - x_hat mean(g_hat x_hat)),
    dweight = sum over the rows of g x_hat,   dbias = sum over the rows of g                         (backward)

The plain path works on blocks of rows of about :data:`BLOCK` elements on a CPU (the whole array on a GPU), so
that its passes over a block run in the cache: the memory sees x (or g and x_hat) read once and the result
written once (the affine part too: unfused, x_hat weight + bias and the three gradients of the backward take
five more passes through memory and three temporaries). The row sums are matrix-vector products with a vector
of 1/D (BLAS, several times faster than ``mean(axis=-1)`` on short rows), the sums of products
``einsum("ij,ij->i")`` (no temporary), the column sums of the affine gradients products with a vector of ones.
The mean is refined once by the mean of the residuals x - mean, which removes the rounding error of the first
sum: a float32 constant such as 1e4 + 0.1 then gives x_hat = 0 exactly instead of its rounding error
normalised up to +-1.
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


def layer_norm_forward(x: Any, normalized_dims: int, eps: float, weight: Any = None,
                       bias: Any = None) -> tuple[Any, Any, Any, Any, Any]:
    """(y, x_hat, mean, var, inv_std) of normalising ``x`` over its last ``normalized_dims`` axes, with
    y = x_hat weight + bias (y is x_hat when both are None; ``weight`` and ``bias`` have the normalised shape);
    the statistics have x's shape with those axes kept as size 1 (as ``keepdims=True`` gives)."""
    if can_fuse(x):
        x_hat, mean, var, inv_std = fused.layer_norm_forward(x, normalized_dims, eps)
        return _affine(x_hat, weight, bias), x_hat, mean, var, inv_std
    xp = get_array_module(x)
    rows, columns = _as_rows(x, normalized_dims)
    weight, bias = (None if p is None else p.reshape(columns) for p in (weight, bias))
    dtype = rows.dtype.type
    x_hat = xp.empty_like(rows)
    y = x_hat if weight is None and bias is None else xp.empty_like(rows)
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
        if y is not x_hat:
            _affine(centred, weight, bias, out=y[block])
    statistics_shape = x.shape[:x.ndim - normalized_dims] + (1,) * normalized_dims
    return (y.reshape(x.shape), x_hat.reshape(x.shape)) + tuple(s.reshape(statistics_shape)
                                                                for s in (mean, var, inv_std))


def layer_norm_backward(x_hat: Any, inv_std: Any, grad_output: Any, normalized_dims: int,
                        weight: Any = None) -> tuple[Any, Any, Any]:
    """(dx, dweight, dbias) of y = x_hat weight + bias (of x_hat alone when ``weight`` is None: then dweight and
    dbias are None). With g_hat = g weight and sums over the rows:
        dx = s (g_hat - mean(g_hat) - x_hat mean(g_hat x_hat)),   dweight = sum(g x_hat),   dbias = sum(g)."""
    if can_fuse(x_hat, inv_std, grad_output):
        grad_x_hat = grad_output if weight is None else grad_output * weight
        dx = fused.layer_norm_backward(x_hat, inv_std, grad_x_hat, normalized_dims)
        if weight is None:
            return dx, None, None
        rows = tuple(range(x_hat.ndim - normalized_dims))
        return dx, (grad_output * x_hat).sum(axis=rows), grad_output.sum(axis=rows)
    xp = get_array_module(x_hat)
    normalised, columns = _as_rows(x_hat, normalized_dims)
    grad, _ = _as_rows(grad_output, normalized_dims)
    scale = -inv_std.reshape(-1)
    dtype = normalised.dtype.type
    averager = xp.full(columns, 1 / columns, normalised.dtype)
    dx = xp.empty_like(normalised)
    blocks = _row_blocks(xp, normalised)
    if weight is not None:
        weight = weight.reshape(columns)
        scratch = xp.empty((blocks[0].stop - blocks[0].start, columns), normalised.dtype)
        dweight, dbias = xp.zeros(columns, normalised.dtype), xp.zeros(columns, normalised.dtype)
        ones = xp.ones(scratch.shape[0], normalised.dtype)
    for block in blocks:
        out, g = dx[block], grad[block]
        if weight is not None:
            count = out.shape[0]
            dbias += xp.matmul(ones[:count], g)
            xp.multiply(g, normalised[block], out=scratch[:count])
            dweight += xp.matmul(ones[:count], scratch[:count])
            g = xp.multiply(g, weight, out=scratch[:count])         # g_hat
        mean_g = xp.matmul(g, averager)
        mean_g_x_hat = xp.einsum("ij,ij->i", g, normalised[block]) * dtype(1 / columns)
        xp.multiply(normalised[block], mean_g_x_hat[:, None], out=out)
        out -= g
        out += mean_g[:, None]
        out *= scale[block][:, None]                          # -s (x_hat mean(g x_hat) - g + mean(g))
    dx = dx.reshape(x_hat.shape)
    if weight is None:
        return dx, None, None
    shape = x_hat.shape[x_hat.ndim - normalized_dims:]
    return dx, dweight.reshape(shape), dbias.reshape(shape)


def _affine(x_hat: Any, weight: Any, bias: Any, out: Any = None) -> Any:
    """x_hat weight + bias (either may be None), broadcast over the rows; into ``out`` when given."""
    if weight is None and bias is None:
        return x_hat
    xp = get_array_module(x_hat)
    if out is None:
        out = xp.empty_like(x_hat)
    if weight is None:
        xp.copyto(out, x_hat)
    else:
        xp.multiply(x_hat, weight, out=out)
    if bias is not None:
        out += bias
    return out


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
