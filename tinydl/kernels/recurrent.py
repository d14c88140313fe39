"""The gate maths of one GRU step on raw arrays: the plain array-module path and, for CuPy arrays with fusion on,
the fused CUDA kernel (:mod:`.cuda.recurrent`, which also holds the fused LSTM step).

With a = x W_ih^T + b_ih and b = h W_hh^T + b_hh, both (batch, 3H) in the gate order [r z n]:

    r = sigmoid(a_r + b_r),  z = sigmoid(a_z + b_z),  n = tanh(a_n + r b_n),  h' = n + z (h - n)
    d(pre n) = g (1 - z) (1 - n^2),  d(pre z) = g (h - n) z (1 - z),  d(pre r) = d(pre n) b_n r (1 - r)
    da = [d(pre r), d(pre z), d(pre n)],  db = [d(pre r), d(pre z), d(pre n) r],  dh = g z
"""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from .cuda import recurrent as fused
from .cuda.build import can_fuse

__all__ = ["gru_gates", "gru_gates_backward"]


def _fusable(input_gates: Any, hidden_gates: Any, hx: Any, *more: Any) -> bool:
    """Fused only for the exact shapes (batch, 3H), (batch, 3H), (batch, H) (no broadcasting)."""
    batch, hidden = hx.shape if hx.ndim == 2 else (None, None)
    return (can_fuse(input_gates, hidden_gates, hx, *more) and hidden is not None
            and input_gates.shape == hidden_gates.shape == (batch, 3 * hidden)
            and all(a.shape == hx.shape for a in more))


def _activations(xp: Any, input_gates: Any, hidden_gates: Any, hidden: int) -> tuple[Any, Any, Any, Any]:
    """r, z, n and b_n; sigmoid(v) = (1 + tanh(v / 2)) / 2 never overflows."""
    a_r, a_z, a_n = (input_gates[..., k * hidden:(k + 1) * hidden] for k in range(3))
    b_r, b_z, b_n = (hidden_gates[..., k * hidden:(k + 1) * hidden] for k in range(3))
    r = 0.5 + 0.5 * xp.tanh(0.5 * (a_r + b_r))
    z = 0.5 + 0.5 * xp.tanh(0.5 * (a_z + b_z))
    return r, z, xp.tanh(a_n + r * b_n), b_n


def gru_gates(input_gates: Any, hidden_gates: Any, hx: Any) -> Any:
    """h' of one GRU step."""
    if _fusable(input_gates, hidden_gates, hx):
        return fused.gru_gates(input_gates, hidden_gates, hx)
    xp = get_array_module(hx)
    _, z, n, _ = _activations(xp, input_gates, hidden_gates, hx.shape[-1])
    return (n + z * (hx - n)).astype(hx.dtype, copy=False)


def gru_gates_backward(input_gates: Any, hidden_gates: Any, hx: Any, grad: Any) -> tuple[Any, Any, Any]:
    """(da, db, dh) of one GRU step given the gradient ``grad`` of h' (arrays of the shapes above)."""
    if _fusable(input_gates, hidden_gates, hx, grad):
        return fused.gru_gates_backward(input_gates, hidden_gates, hx, grad)
    xp = get_array_module(hx)
    r, z, n, b_n = _activations(xp, input_gates, hidden_gates, hx.shape[-1])
    grad_n = grad * (1 - z) * (1 - n * n)
    grad_z = grad * (hx - n) * z * (1 - z)
    grad_r = grad_n * b_n * r * (1 - r)
    dtype = hx.dtype
    return (xp.concatenate([grad_r, grad_z, grad_n], axis=-1).astype(dtype, copy=False),
            xp.concatenate([grad_r, grad_z, grad_n * r], axis=-1).astype(dtype, copy=False),
            (grad * z).astype(dtype, copy=False))
