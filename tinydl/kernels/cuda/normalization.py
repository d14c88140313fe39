"""Fused layer normalisation over the rows of a C-contiguous (rows, D) array: one block per row, warp-shuffle
reductions (``block_sum`` in :mod:`.build`), the statistics and the normalised row in one launch.

    mean = sum_d x_d / D,   var = sum_d (x_d - mean)^2 / D   (two passes: no cancellation for large x),
    s = 1 / sqrt(var + eps),   x_hat_d = (x_d - mean) s                                            (forward)
    dx_d = s (g_d - mean_k(g_k) - x_hat_d mean_k(g_k x_hat_k))                                    (backward)

The affine part (x_hat * weight + bias) stays plain broadcasting arithmetic, as in the plain path.
"""
from __future__ import annotations

from typing import Any

from .build import as_contiguous, empty, kernel, launch_rows, real, register, size

__all__ = ["layer_norm_forward", "layer_norm_backward"]

NORMALIZATION = register("normalization", r"""

extern "C" __global__ void layer_norm_forward(const real* x, real* x_hat, real* mean, real* var, real* inv_std,
                                              real eps, long long rows, long long columns) {
    FOR_EACH_ROW(row, rows) {
        const real* in = x + row * columns;
        real* out = x_hat + row * columns;
        real sum = 0;
        FOR_EACH_COLUMN(c, columns) sum += in[c];
        real mu = block_sum(sum) / columns;
        real squares = 0;
        FOR_EACH_COLUMN(c, columns) { real d = in[c] - mu; squares += d * d; }
        real variance = block_sum(squares) / columns;
        real s = (real)1 / sqrt(variance + eps);
        FOR_EACH_COLUMN(c, columns) out[c] = (in[c] - mu) * s;
        if (threadIdx.x == 0) { mean[row] = mu; var[row] = variance; inv_std[row] = s; }
    }
}

extern "C" __global__ void layer_norm_backward(const real* x_hat, const real* inv_std, const real* g, real* gx,
                                               long long rows, long long columns) {
    FOR_EACH_ROW(row, rows) {
        const real* normalised = x_hat + row * columns;
        const real* grad = g + row * columns;
        real* result = gx + row * columns;
        real sum_g = 0, sum_g_x_hat = 0;
        FOR_EACH_COLUMN(c, columns) { sum_g += grad[c]; sum_g_x_hat += grad[c] * normalised[c]; }
        real mean_g = block_sum(sum_g) / columns;
        real mean_g_x_hat = block_sum(sum_g_x_hat) / columns;
        real s = inv_std[row];
        FOR_EACH_COLUMN(c, columns) result[c] = s * (grad[c] - mean_g - normalised[c] * mean_g_x_hat);
    }
}
""")


def layer_norm_forward(x: Any, normalized_dims: int, eps: float) -> tuple[Any, Any, Any, Any]:
    """(x_hat, mean, var, inv_std) of normalising ``x`` over its last ``normalized_dims`` axes; the statistics
    have x's shape with those axes kept as size 1 (as ``keepdims=True`` gives)."""
    x = as_contiguous(x)
    statistics_shape = x.shape[:x.ndim - normalized_dims] + (1,) * normalized_dims
    columns = _columns(x, normalized_dims)
    rows = x.size // columns if columns else 0
    x_hat = empty(x)
    mean, var, inv_std = (empty(x, statistics_shape) for _ in range(3))
    launch_rows(kernel(NORMALIZATION, x.dtype.name, "layer_norm_forward"), rows,
                (x, x_hat, mean, var, inv_std, real(x, eps), size(rows), size(columns)))
    return x_hat, mean, var, inv_std


def layer_norm_backward(x_hat: Any, inv_std: Any, grad_output: Any, normalized_dims: int) -> Any:
    """dx = s (g - mean(g) - x_hat mean(g x_hat)) over the last ``normalized_dims`` axes."""
    x_hat, inv_std, grad_output = (as_contiguous(a) for a in (x_hat, inv_std, grad_output))
    columns = _columns(x_hat, normalized_dims)
    rows = x_hat.size // columns if columns else 0
    grad = empty(x_hat)
    launch_rows(kernel(NORMALIZATION, x_hat.dtype.name, "layer_norm_backward"), rows,
                (x_hat, inv_std, grad_output, grad, size(rows), size(columns)))
    return grad


def _columns(x: Any, normalized_dims: int) -> int:
    columns = 1
    for extent in x.shape[x.ndim - normalized_dims:]:
        columns *= extent
    return columns
