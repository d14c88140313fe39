"""Fused softmax, log-softmax and cross-entropy over the rows of a C-contiguous (rows, C) array: one block of
threads per row, which finds the row's maximum and sum with warp shuffles (see ``block_max`` / ``block_sum`` in
:mod:`.build`) and writes the row in the same launch, where the plain path makes five passes over memory.

With m = max_c x_c and S = sum_c e^(x_c - m) per row:

    softmax      y_c = e^(x_c - m) / S                 backward  dx_c = y_c (gy_c - sum_k gy_k y_k)
    log_softmax  y_c = x_c - m - log S                 backward  dx_c = gy_c - e^(y_c) sum_k gy_k

Attention's softmax (``masked_softmax``) works in place and turns rows that are entirely masked (-inf) into zeros.

Cross-entropy of row i with target t_i (class weights absent), from :class:`tinydl.functional.loss.ClassTargets`'
per-sample numbers: the weight on the target w_i ("on_target"), the label-smoothing share s_i ("spread", 0
without smoothing) and their total r_i = w_i + C s_i:

    loss_i = r_i log S_i - w_i (x_{i t_i} - m_i) - s_i sum_c (x_ic - m_i)
    dx_ic  = a_i (r_i e^(x_ic - m_i - log S_i) - w_i [c = t_i] - s_i)        (a_i: the sample's gradient factor)

The forward keeps the differences x - m apart from log S (as the plain path does), so that large logits lose no
precision; it saves m_i + log S_i (the row's log-normaliser), from which the backward recomputes the softmax; the
plain path keeps the whole e^(x - m) array instead.
"""
from __future__ import annotations

from typing import Any

from ...backend import get_array_module
from .build import as_contiguous, empty, flag, kernel, launch, launch_rows, on_device, register, size

__all__ = ["softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward",
           "masked_softmax_", "cross_entropy_forward", "cross_entropy_backward"]

SOFTMAX = register("softmax", r"""

// The maximum m and log S = log sum_c e^(x_c - m) of one row.
__device__ void row_statistics(const real* x, long long columns, real* m_out, real* log_s_out) {
    real m = NEGATIVE_INFINITY;
    FOR_EACH_COLUMN(c, columns) m = fmax(m, x[c]);
    m = block_max(m);
    real s = 0;
    FOR_EACH_COLUMN(c, columns) s += exp(x[c] - m);
    *m_out = m;
    *log_s_out = log(block_sum(s));
}

extern "C" __global__ void softmax_forward(const real* x, real* y, long long rows, long long columns, int as_log) {
    FOR_EACH_ROW(row, rows) {
        const real* in = x + row * columns;
        real* out = y + row * columns;
        real m, log_s;
        row_statistics(in, columns, &m, &log_s);
        FOR_EACH_COLUMN(c, columns) out[c] = as_log ? (in[c] - m) - log_s : exp((in[c] - m) - log_s);
    }
}

extern "C" __global__ void softmax_backward(const real* y, const real* gy, real* gx, long long rows,
                                            long long columns, int as_log) {
    FOR_EACH_ROW(row, rows) {
        const real* out = y + row * columns;
        const real* grad = gy + row * columns;
        real* result = gx + row * columns;
        real s = 0;
        FOR_EACH_COLUMN(c, columns) s += as_log ? grad[c] : grad[c] * out[c];
        s = block_sum(s);
        FOR_EACH_COLUMN(c, columns) result[c] = as_log ? grad[c] - exp(out[c]) * s : out[c] * (grad[c] - s);
    }
}

// Attention's softmax, in place: a row whose maximum (NaN ignored, as fmax does) is not finite is shifted by 0
// instead, and a row whose exponentials sum to 0 (every key masked with -inf) becomes zeros, not NaN.
extern "C" __global__ void masked_softmax(real* scores, long long rows, long long columns) {
    FOR_EACH_ROW(row, rows) {
        real* s = scores + row * columns;
        real m = NEGATIVE_INFINITY;
        FOR_EACH_COLUMN(c, columns) m = fmax(m, s[c]);
        m = block_max(m);
        if (!isfinite(m)) m = 0;
        real total = 0;
        FOR_EACH_COLUMN(c, columns) { real e = exp(s[c] - m); s[c] = e; total += e; }
        total = block_sum(total);
        if (total == (real)0) total = 1;
        FOR_EACH_COLUMN(c, columns) s[c] /= total;
    }
}

extern "C" __global__ void cross_entropy_forward(const real* x, const long long* target, const real* on_target,
                                                 const real* spread, real* losses, real* log_normaliser,
                                                 long long rows, long long columns) {
    FOR_EACH_ROW(row, rows) {
        const real* in = x + row * columns;
        real m, log_s;
        row_statistics(in, columns, &m, &log_s);
        real shifted_sum = 0;                                     // sum_c (x_c - m), only needed when smoothing
        if (spread[row] != (real)0) {                             // the same branch for the whole block
            FOR_EACH_COLUMN(c, columns) shifted_sum += in[c] - m;
            shifted_sum = block_sum(shifted_sum);
        }
        if (threadIdx.x == 0) {
            real r = on_target[row] + columns * spread[row];
            losses[row] = r * log_s - on_target[row] * (in[target[row]] - m) - spread[row] * shifted_sum;
            log_normaliser[row] = m + log_s;
        }
    }
}

extern "C" __global__ void cross_entropy_backward(const real* x, const long long* target, const real* on_target,
                                                  const real* spread, const real* log_normaliser,
                                                  const real* scale, real* gx, long long rows, long long columns) {
    FOR_EACH_INDEX(k, rows * columns) {
        long long row = k / columns, c = k % columns;
        real r = on_target[row] + columns * spread[row];
        real q = (c == target[row] ? on_target[row] : (real)0) + spread[row];
        gx[k] = scale[row] * (r * exp(x[k] - log_normaliser[row]) - q);         // p_ic = e^(x_ic - m_i - log S_i)
    }
}
""")


def _rows(x: Any) -> tuple[int, int]:
    columns = x.shape[-1] if x.ndim else 1
    return (x.size // columns if columns else 0), columns


def _forward(x: Any, as_log: bool) -> Any:
    x = as_contiguous(x)
    y = empty(x)
    rows, columns = _rows(x)
    launch_rows(kernel(SOFTMAX, x.dtype.name, "softmax_forward"), rows,
                (x, y, size(rows), size(columns), flag(as_log)))
    return y


def _backward(y: Any, grad_output: Any, as_log: bool) -> Any:
    y, grad_output = as_contiguous(y), as_contiguous(grad_output)
    grad = empty(y)
    rows, columns = _rows(y)
    launch_rows(kernel(SOFTMAX, y.dtype.name, "softmax_backward"), rows,
                (y, grad_output, grad, size(rows), size(columns), flag(as_log)))
    return grad


def softmax_forward(x: Any) -> Any:
    """Softmax along the last axis of a CuPy array."""
    return _forward(x, as_log=False)


def log_softmax_forward(x: Any) -> Any:
    """Log-softmax along the last axis of a CuPy array."""
    return _forward(x, as_log=True)


def softmax_backward(y: Any, grad_output: Any) -> Any:
    """dx = y (gy - sum gy y) along the last axis, from the softmax output y."""
    return _backward(y, grad_output, as_log=False)


def log_softmax_backward(y: Any, grad_output: Any) -> Any:
    """dx = gy - e^y sum gy along the last axis, from the log-softmax output y."""
    return _backward(y, grad_output, as_log=True)


def masked_softmax_(scores: Any) -> Any:
    """Attention's row softmax in place on a C-contiguous CuPy array (all-masked rows give zeros); returns it."""
    rows, columns = _rows(scores)
    launch_rows(kernel(SOFTMAX, scores.dtype.name, "masked_softmax"), rows, (scores, size(rows), size(columns)))
    return scores


def cross_entropy_forward(x: Any, target: Any, on_target: Any, spread: Any) -> tuple[Any, Any]:
    """(per-sample losses, per-sample log-normalisers m + log S) of logits ``x`` (N, C) against class indices
    ``target`` (N,), with per-sample target weights ``on_target`` and smoothing shares ``spread`` (N,)."""
    x = as_contiguous(x)
    rows, columns = x.shape
    target, on_target, spread = _per_sample(x, target, on_target, spread)
    losses, log_normaliser = empty(x, (rows,)), empty(x, (rows,))
    launch_rows(kernel(SOFTMAX, x.dtype.name, "cross_entropy_forward"), rows,
                (x, target, on_target, spread, losses, log_normaliser, size(rows), size(columns)))
    return losses, log_normaliser


def cross_entropy_backward(x: Any, target: Any, on_target: Any, spread: Any, log_normaliser: Any,
                           scale: Any) -> Any:
    """dx (N, C) of the cross-entropy, given the forward's log-normalisers and the per-sample factors ``scale``
    (a scalar or an (N,) array)."""
    x = as_contiguous(x)
    rows, columns = x.shape
    target, on_target, spread, scale = _per_sample(x, target, on_target, spread, scale)
    grad = empty(x)
    launch(kernel(SOFTMAX, x.dtype.name, "cross_entropy_backward"), x.size,
           (x, target, on_target, spread, as_contiguous(log_normaliser), scale, grad, size(rows), size(columns)))
    return grad


def _per_sample(x: Any, target: Any, *numbers: Any) -> list[Any]:
    """The target as contiguous int64 and each per-sample number (array or scalar) as a contiguous (N,) array of
    x's dtype, all on x's device."""
    cupy = get_array_module(x)
    rows = x.shape[0]
    with on_device(x):
        arrays = [cupy.ascontiguousarray(cupy.asarray(target).reshape(rows), dtype=cupy.int64)]
        for value in numbers:
            array = cupy.asarray(value, dtype=x.dtype)
            arrays.append(cupy.ascontiguousarray(cupy.broadcast_to(array, (rows,))))
    return arrays
