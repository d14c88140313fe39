"""Scaled dot-product attention on raw arrays: the masked softmax of the forward and the plain (first-order)
backward of :mod:`tinydl.functional.attention`, each working in as few passes over the L x S scores as it can.

Forward, on the scores S = scale Q K^T (..., L, S), in place:

    S += additive mask;  S[~allowed] = -inf;  P = e^(S - m) / rowsum(e^(S - m))

Any per-row shift m gives the same P; it exists only so that e^x neither overflows nor underflows to a row of
zeros. When every finite score lies within +-T with T = log(largest float) / 2 (44 in float32, 354 in float64),
e^S is finite and normal as it stands, so m = 0 and the row maximum (a slow reduction along the short last
axis) and the subtraction are skipped: the NumPy path checks the range with two reductions over the whole array
(fast, contiguous), before the masks are applied, and adds the additive mask's finite range. On CuPy such a check
would read a number back to the host (a synchronisation), so there the shift is always taken (one fused CUDA
kernel with fusion on). Rows whose keys are all masked (all -inf) give P = 0, not NaN. On NumPy the row sums are
a matrix-vector product with a vector of ones (BLAS reads a row once, where ``sum(axis=-1)`` is a strided
reduction about 4x slower at L = S = 128).

Backward (see the functional module for the derivation), with dropout's scaled mask d = keep / (1 - p) (d = 1
without dropout), weights W = P d, dO the output's gradient and dW the weights' own gradient (need_weights):

    dV = W^T dO
    dP = (dO V^T + dW) d
    D  = rowsum(dO * O) (+ rowsum(dW * W))    = rowsum(dP * P), read from L x Ev numbers instead of L x S
    dS = P (dP - D)                          in place in dP's buffer: two passes, no temporary
    dQ = scale dS K,  dK = scale dS^T Q,  d(additive mask) = dS

D is one ``einsum`` (no dO * O temporary). V^T is copied to a contiguous array before dO V^T (BLAS reads the
transposed view of the packed projection about 25% slower), and the copy carries the scale: with
dP' = dO (scale V^T) = scale dP and D' = scale D, dS' = P (dP' - D') = scale dS, so dQ = dS' K and dK = dS'^T Q
need no pass of their own. Only when the additive mask wants its gradient dS itself does the scale go on dQ and
dK instead. The forward likewise folds the scale into its contiguous copy of K^T (:func:`scaled_transpose`).
"""
from __future__ import annotations

import math
from typing import Any

from ..backend import get_array_module
from .cuda import softmax as fused
from .cuda.build import can_fuse, contiguous
from .reductions import max_last_axis

__all__ = ["attention_weights_", "attention_output", "attention_backward", "exp_needs_no_shift", "output_buffer",
           "row_dot", "row_sums", "scaled_transpose"]


def scaled_transpose(x: Any, factor: float) -> Any:
    """factor * x^T (the last two axes swapped) as a C-contiguous array, in one pass: the copy that gives BLAS a
    contiguous operand, with a scale folded into it."""
    xp = get_array_module(x)
    transposed = xp.swapaxes(x, -1, -2)
    return xp.multiply(transposed, x.dtype.type(factor), out=xp.empty(transposed.shape, dtype=x.dtype))


def exp_needs_no_shift(scores: Any, additive_mask: Any = None) -> bool:
    """True when e^(scores + additive_mask) can be taken without subtracting each row's maximum: every finite
    value of the sum lies within +-log(largest float) / 2, so e^x and a row's sum of them stay finite and normal.
    Always False on CuPy (the check would synchronise with the GPU)."""
    xp = get_array_module(scores)
    if xp.__name__ != "numpy" or scores.size == 0:
        return False
    low, high = float(scores.min()), float(scores.max())
    if additive_mask is not None:
        finite = xp.isfinite(additive_mask)
        low += min(float(xp.min(additive_mask, where=finite, initial=0.0)), 0.0)
        high += max(float(xp.max(additive_mask, where=finite, initial=0.0)), 0.0)
    limit = math.log(float(xp.finfo(scores.dtype).max)) / 2
    return -limit <= low and high <= limit   # False for NaN as well


def row_sums(x: Any) -> Any:
    """sum_j x[..., j], keeping the reduced axis: on NumPy x @ ones (BLAS), elsewhere ``sum``."""
    xp = get_array_module(x)
    if xp.__name__ == "numpy":
        return x @ xp.ones((x.shape[-1], 1), dtype=x.dtype)
    return x.sum(axis=-1, keepdims=True)


def attention_weights_(scores: Any, additive_mask: Any = None, allowed: Any = None) -> Any:
    """P = softmax(scores + additive_mask, -inf where ``allowed`` is False) along the last axis, computed in place
    in ``scores`` (a C-contiguous array of the scores' full shape) and returned; rows with every key masked give
    zeros. See the module docstring for when the row maximum is skipped."""
    xp = get_array_module(scores)
    shift = not exp_needs_no_shift(scores, additive_mask)
    if additive_mask is not None:
        scores += additive_mask
    if allowed is not None:
        xp.copyto(scores, scores.dtype.type(-math.inf), where=~allowed)
    if can_fuse(scores) and contiguous(scores):
        return fused.masked_softmax_(scores)
    if shift:
        peak = max_last_axis(scores)
        # masks through where= (elementwise), not peak[mask] = 0: on CuPy a boolean-mask assignment reads the
        # mask's count back to the host, a synchronisation in every attention layer
        xp.copyto(peak, 0, where=~xp.isfinite(peak))   # a row that is all -inf: exp(-inf - 0) = 0 everywhere
        scores -= peak
    xp.exp(scores, out=scores)
    total = row_sums(scores)
    xp.copyto(total, 1, where=total == 0)              # the all-masked rows: 0 / 1 = 0
    scores /= total
    return scores


def output_buffer(xp: Any, batch: tuple[int, ...], length: int, features: int, dtype: Any) -> Any:
    """An uninitialised (*batch, L, Ev) array for the attention output. With a heads axis (batch[-1] = H) its
    memory is laid out as (..., L, H, Ev), so that the usual merge of the heads, O.transpose(-3, -2).reshape(...,
    L, H Ev), is a view instead of a copy (PyTorch's CPU attention returns the same layout); products write into
    it through ``matmul(..., out=)`` (BLAS takes the row stride)."""
    if not batch:
        return xp.empty((length, features), dtype=dtype)
    return xp.swapaxes(xp.empty(batch[:-1] + (length, batch[-1], features), dtype=dtype), -3, -2)


def attention_output(weights: Any, v: Any) -> Any:
    """O = W V (..., L, Ev); on NumPy, when W and V have the same batch shape, in the layout of
    :func:`output_buffer`."""
    xp = get_array_module(weights)
    if xp.__name__ != "numpy" or weights.shape[:-2] != v.shape[:-2]:
        return weights @ v
    output = output_buffer(xp, weights.shape[:-2], weights.shape[-2], v.shape[-1], xp.result_type(weights, v))
    return xp.matmul(weights, v, out=output)


def row_dot(a: Any, b: Any) -> Any:
    """sum_j a[..., j] b[..., j], keeping the reduced axis, without an a * b temporary."""
    xp = get_array_module(a)
    return xp.einsum("...j,...j->...", a, b)[..., None]


def attention_backward(q: Any, k: Any, v: Any, probabilities: Any, output: Any, grad_output: Any,
                       grad_weights: Any, scaled_keep: Any, scale: float, needs: tuple[bool, ...]
                       ) -> tuple[Any, Any, Any, Any]:
    """(dQ, dK, dV, d(additive mask)) as in the module docstring, each None where ``needs`` (one flag per input:
    Q, K, V and, when there is one, the additive mask) says no gradient is wanted. ``scaled_keep`` is dropout's
    keep / (1 - p) or None; ``grad_weights`` the gradient of the returned weights or None."""
    xp = get_array_module(probabilities)
    weights = probabilities if scaled_keep is None else probabilities * scaled_keep
    grad_v = xp.swapaxes(weights, -1, -2) @ grad_output if needs[2] else None
    if not (needs[0] or needs[1] or (len(needs) == 4 and needs[3])):
        return None, None, grad_v, None
    mask_wants_grad = len(needs) == 4 and needs[3]
    folded = 1.0 if mask_wants_grad else scale                  # the factor dS' carries: scale dS, or dS itself
    grad_scores = grad_output @ scaled_transpose(v, folded)     # dP', then dS' in the same buffer
    correction = row_dot(grad_output, output)                   # D, then D'
    if grad_weights is not None:
        grad_scores += grad_weights if folded == 1.0 else grad_weights * grad_weights.dtype.type(folded)
        correction = correction + row_dot(grad_weights, weights)
    if scaled_keep is not None:
        grad_scores *= scaled_keep
    correction *= correction.dtype.type(folded)
    grad_scores -= correction
    grad_scores *= probabilities
    grad_q = grad_k = None
    if needs[0]:
        grad_q = grad_scores @ k
        if folded != scale:
            grad_q *= grad_q.dtype.type(scale)
    if needs[1]:
        grad_k = xp.swapaxes(grad_scores, -1, -2) @ q
        if folded != scale:
            grad_k *= grad_k.dtype.type(scale)
    return grad_q, grad_k, grad_v, grad_scores if mask_wants_grad else None
