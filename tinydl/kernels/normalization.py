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

BLOCK = 2**18  # elements per block of rows on a CPU: a block and its work arrays (1 MB each) stay in the L3 cache
# (each NumPy call costs about a microsecond of its own, which blocks that fit the L2 cache pay too often: on the
# (32 x 128, 128) rows of the examples' GPT, 1 thread, the normalisation without the affine part took 0.91 / 0.83
# ms forward / backward in blocks of 2**14 elements, 0.72 / 0.72 in 2**15, 0.55 / 0.56 in 2**18)


def layer_norm_forward(x: Any, normalized_dims: int, eps: float, weight: Any = None,
                       bias: Any = None) -> tuple[Any, Any, Any, Any]:
    """(y, mean, var, inv_std) of normalising ``x`` over its last ``normalized_dims`` axes: y = x_hat weight + bias,
    or x_hat when both are None (``weight`` and ``bias`` have the normalised shape); the statistics have x's shape
    with those axes kept as size 1 (as ``keepdims=True`` gives). With weight or bias, x_hat lives only in the
    cache: the backward recomputes it from x and the statistics."""
    if can_fuse(x):
        x_hat, mean, var, inv_std = fused.layer_norm_forward(x, normalized_dims, eps)
        return _affine(x_hat, weight, bias), mean, var, inv_std
    xp = get_array_module(x)
    rows, columns = _as_rows(x, normalized_dims)
    weight, bias = (None if p is None else p.reshape(columns) for p in (weight, bias))
    dtype = rows.dtype.type
    y = xp.empty_like(rows)
    mean, var, inv_std = (xp.empty(rows.shape[0], rows.dtype) for _ in range(3))
    averager = xp.full(columns, 1 / columns, rows.dtype)
    blocks = _row_blocks(xp, rows)
    affine = weight is not None or bias is not None
    scratch = _block_array(xp, blocks[0], columns, rows.dtype) if affine else None
    for block in blocks:
        centred = scratch[:block.stop - block.start] if affine else y[block]
        block_mean = xp.matmul(rows[block], averager)
        xp.subtract(rows[block], block_mean[:, None], out=centred)
        residual = xp.matmul(centred, averager)              # refines the mean (module docstring)
        centred -= residual[:, None]
        mean[block] = block_mean + residual
        var[block] = xp.einsum("ij,ij->i", centred, centred) * dtype(1 / columns)
        inv_std[block] = 1 / xp.sqrt(var[block] + dtype(eps))
        centred *= inv_std[block][:, None]                   # x_hat
        if affine:
            _affine(centred, weight, bias, out=y[block])
    statistics_shape = x.shape[:x.ndim - normalized_dims] + (1,) * normalized_dims
    return (y.reshape(x.shape),) + tuple(s.reshape(statistics_shape) for s in (mean, var, inv_std))


def layer_norm_backward(x: Any, mean: Any, inv_std: Any, grad_output: Any, normalized_dims: int,
                        weight: Any = None) -> tuple[Any, Any, Any]:
    """(dx, dweight, dbias) of y = x_hat weight + bias, x_hat = (x - mean) s, s = ``inv_std`` (of y = x_hat when
    ``weight`` is None: then dweight and dbias are None). With g_hat = g weight, means over a row and sums over
    the rows:
        dx = s (g_hat - mean(g_hat) - x_hat mean(g_hat x_hat)),   dweight = sum(g x_hat),   dbias = sum(g).

    x_hat is never formed: with the centred block c = x - mean (one pass, in the cache), x_hat = c s, so
    mean(g_hat x_hat) = s mean(g_hat c) and dweight = sum over the rows of s g c (a matrix-vector product by s),
    and dx = s (g_hat - mean(g_hat)) - (s^3 mean(g_hat c)) c: per-row scalars times whole rows.
    """
    if can_fuse(x, inv_std, grad_output):
        x_hat = (x - mean) * inv_std
        grad_x_hat = grad_output if weight is None else grad_output * weight
        dx = fused.layer_norm_backward(x_hat, inv_std, grad_x_hat, normalized_dims)
        if weight is None:
            return dx, None, None
        rows = tuple(range(x.ndim - normalized_dims))
        return dx, (grad_output * x_hat).sum(axis=rows), grad_output.sum(axis=rows)
    xp = get_array_module(x)
    inputs, columns = _as_rows(x, normalized_dims)
    grad, _ = _as_rows(grad_output, normalized_dims)
    mean, inv_std = mean.reshape(-1), inv_std.reshape(-1)
    dtype = inputs.dtype.type
    averager = xp.full(columns, 1 / columns, inputs.dtype)
    dx = xp.empty_like(inputs)
    blocks = _row_blocks(xp, inputs)
    centred_block = _block_array(xp, blocks[0], columns, inputs.dtype)
    if weight is not None:
        weight = weight.reshape(columns)
        g_hat_block = _block_array(xp, blocks[0], columns, inputs.dtype)
        dweight, dbias = xp.zeros(columns, inputs.dtype), xp.zeros(columns, inputs.dtype)
        ones = xp.ones(g_hat_block.shape[0], inputs.dtype)
    for block in blocks:
        count, s = block.stop - block.start, inv_std[block]
        out, g, centred = dx[block], grad[block], centred_block[:count]
        xp.subtract(inputs[block], mean[block][:, None], out=centred)
        if weight is not None:
            dbias += xp.matmul(ones[:count], g)
            dweight += xp.matmul(s, xp.multiply(g, centred, out=g_hat_block[:count]))   # sum(g x_hat)
            g = xp.multiply(g, weight, out=g_hat_block[:count])
        mean_g = xp.matmul(g, averager)
        mean_g_centred = xp.einsum("ij,ij->i", g, centred) * dtype(1 / columns)
        xp.multiply(centred, (-s * s * s * mean_g_centred)[:, None], out=out)   # -s x_hat mean(g x_hat)
        if weight is None:
            out += g * s[:, None]
        else:
            g *= s[:, None]                                   # g_hat is not needed after this
            out += g
        out -= (s * mean_g)[:, None]
    dx = dx.reshape(x.shape)
    if weight is None:
        return dx, None, None
    shape = x.shape[x.ndim - normalized_dims:]
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


def _block_array(xp: Any, block: slice, columns: int, dtype: Any) -> Any:
    """A work array for one block of rows."""
    return xp.empty((block.stop - block.start, columns), dtype)


def _row_blocks(xp: Any, rows: Any) -> list[slice]:
    """Slices of about :data:`BLOCK` elements of whole rows on a CPU; one slice of all rows on a GPU."""
    count, columns = rows.shape
    step = max(1, BLOCK // columns) if xp.__name__ == "numpy" else max(1, count)
    return [slice(start, min(start + step, count)) for start in range(0, count, step)]
