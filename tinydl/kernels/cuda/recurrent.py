"""Fused gate maths of one LSTM or GRU step: one thread per (sample, hidden unit) does the whole step's elementwise
work, reading each gate once, where the plain path makes a pass over memory per operation.

LSTM, pre-activations ``gates`` (batch, 4H) in the order [i f g o], previous cell state c (batch, H):

    i, f, o = sigmoid(.),  g = tanh(.),  c' = f c + i g,  h' = o tanh(c')                  (forward)
    dc = grad_c + grad_h o (1 - tanh(c')^2)                                                  (backward)
    d(pre i) = dc g i (1 - i),  d(pre f) = dc c f (1 - f),  d(pre g) = dc i (1 - g^2),
    d(pre o) = grad_h tanh(c') o (1 - o),  dc_prev = dc f

GRU, input projections ``input_gates`` = x W_ih^T + b_ih and hidden projections ``hidden_gates`` = h W_hh^T + b_hh
(batch, 3H) in the order [r z n], previous hidden state h (batch, H):

    r = sigmoid(a_r + b_r),  z = sigmoid(a_z + b_z),  n = tanh(a_n + r b_n),  h' = n + z (h - n)     (forward)
    d(pre n) = g (1 - z) (1 - n^2),  d(pre z) = g (h - n) z (1 - z),  d(pre r) = d(pre n) b_n r (1 - r)
    d a = [d(pre r), d(pre z), d(pre n)],  d b = [d(pre r), d(pre z), d(pre n) r],  dh = g z            (backward)

The LSTM forward writes the activated gates back into ``gates`` (the backward reads them), as the plain path does.
The GRU has two kernel pairs: ``gru_forward``/``gru_backward`` for a single step (the cell: the backward
recomputes r, z, n from a and b), and ``gru_sequence_forward``/``gru_sequence_backward`` for a step of
:class:`tinydl.functional.recurrent.GRUSequence`, which saves the activated gates r, z, n and b_n of every step and
reads them back in the backward, as its plain path does.
"""
from __future__ import annotations

from typing import Any

from .build import as_contiguous, empty, flag, kernel, launch, register, size

__all__ = ["lstm_pointwise", "lstm_pointwise_backward", "gru_gates", "gru_gates_backward", "gru_pointwise",
           "gru_pointwise_backward"]

RECURRENT = register("recurrent", r"""
// Thread k handles sample b = k / H, unit j = k % H; gate q of that unit sits at row b, column q*H + j.
extern "C" __global__ void lstm_forward(real* gates, const real* c_prev, real* c, real* tanh_c, real* h,
                                        long long batch, long long hidden) {
    FOR_EACH_INDEX(k, batch * hidden) {
        long long b = k / hidden, j = k % hidden;
        real* row = gates + b * 4 * hidden;
        real i = sigmoid_of(row[j]), f = sigmoid_of(row[hidden + j]);
        real g = tanh(row[2 * hidden + j]), o = sigmoid_of(row[3 * hidden + j]);
        row[j] = i; row[hidden + j] = f; row[2 * hidden + j] = g; row[3 * hidden + j] = o;
        real cell = f * c_prev[k] + i * g;
        real t = tanh(cell);
        c[k] = cell; tanh_c[k] = t; h[k] = o * t;
    }
}

extern "C" __global__ void lstm_backward(const real* activated, const real* c_prev, const real* tanh_c,
                                         const real* grad_h, const real* grad_c, real* grad_gates,
                                         real* grad_c_prev, long long batch, long long hidden) {
    FOR_EACH_INDEX(k, batch * hidden) {
        long long b = k / hidden, j = k % hidden;
        const real* row = activated + b * 4 * hidden;
        real* grad_row = grad_gates + b * 4 * hidden;
        real i = row[j], f = row[hidden + j], g = row[2 * hidden + j], o = row[3 * hidden + j];
        real t = tanh_c[k], gh = grad_h[k];
        real dc = grad_c[k] + gh * o * ((real)1 - t * t);
        grad_row[j] = dc * g * i * ((real)1 - i);
        grad_row[hidden + j] = dc * c_prev[k] * f * ((real)1 - f);
        grad_row[2 * hidden + j] = dc * i * ((real)1 - g * g);
        grad_row[3 * hidden + j] = gh * t * o * ((real)1 - o);
        grad_c_prev[k] = dc * f;
    }
}

// GRU unit j of sample b: its three gates sit at row + j, row + H + j, row + 2H + j with row = b * 3H.
// r, z, n and b_n from the input projections a and the hidden projections bh:
__device__ __forceinline__ void gru_activate(const real* a, const real* bh, long long row, long long j,
                                             long long hidden, real* r, real* z, real* n, real* hn) {
    *r = sigmoid_of(a[row + j] + bh[row + j]);
    *z = sigmoid_of(a[row + hidden + j] + bh[row + hidden + j]);
    *hn = bh[row + 2 * hidden + j];
    *n = tanh(a[row + 2 * hidden + j] + *r * *hn);
}

// The gradients of the unit's pre-activations from g = dL/dh' (the module docstring's backward formulas):
// into both projections (the n gate's hidden share scaled by r); the caller writes dh = g z.
__device__ __forceinline__ void gru_gate_gradients(real g, real h, real r, real z, real n, real hn,
                                                   long long row, long long j, long long hidden,
                                                   real* grad_a, real* grad_b) {
    real dn = g * ((real)1 - z) * ((real)1 - n * n);
    real dz = g * (h - n) * z * ((real)1 - z);
    real dr = dn * hn * r * ((real)1 - r);
    grad_a[row + j] = dr; grad_a[row + hidden + j] = dz; grad_a[row + 2 * hidden + j] = dn;
    grad_b[row + j] = dr; grad_b[row + hidden + j] = dz; grad_b[row + 2 * hidden + j] = dn * r;
}

extern "C" __global__ void gru_forward(const real* a, const real* bh, const real* h, real* h_next,
                                       long long batch, long long hidden) {
    FOR_EACH_INDEX(k, batch * hidden) {
        long long row = k / hidden * 3 * hidden, j = k % hidden;
        real r, z, n, hn;
        gru_activate(a, bh, row, j, hidden, &r, &z, &n, &hn);
        h_next[k] = n + z * (h[k] - n);
    }
}

extern "C" __global__ void gru_backward(const real* a, const real* bh, const real* h, const real* grad,
                                        real* grad_a, real* grad_b, real* grad_h, long long batch,
                                        long long hidden) {
    FOR_EACH_INDEX(k, batch * hidden) {
        long long row = k / hidden * 3 * hidden, j = k % hidden;
        real r, z, n, hn;
        gru_activate(a, bh, row, j, hidden, &r, &z, &n, &hn);
        gru_gate_gradients(grad[k], h[k], r, z, n, hn, row, j, hidden, grad_a, grad_b);
        grad_h[k] = grad[k] * z;
    }
}

// One step of a GRU sequence: also stores r, z, n (activated) and b_n (hidden_n, when store_hidden_n) for backward.
extern "C" __global__ void gru_sequence_forward(const real* a, const real* bh, const real* h, real* activated,
                                                real* hidden_n, real* h_next, int store_hidden_n,
                                                long long batch, long long hidden) {
    FOR_EACH_INDEX(k, batch * hidden) {
        long long row = k / hidden * 3 * hidden, j = k % hidden;
        real r, z, n, hn;
        gru_activate(a, bh, row, j, hidden, &r, &z, &n, &hn);
        activated[row + j] = r; activated[row + hidden + j] = z; activated[row + 2 * hidden + j] = n;
        if (store_hidden_n) hidden_n[k] = hn;
        h_next[k] = n + z * (h[k] - n);
    }
}

// Its backward, from the saved r, z, n and b_n; grad_h gets only the direct part g z (the caller adds the
// product of grad_b with W_hh).
extern "C" __global__ void gru_sequence_backward(const real* activated, const real* hidden_n, const real* h,
                                                 const real* grad, real* grad_a, real* grad_b, real* grad_h,
                                                 long long batch, long long hidden) {
    FOR_EACH_INDEX(k, batch * hidden) {
        long long row = k / hidden * 3 * hidden, j = k % hidden;
        real r = activated[row + j], z = activated[row + hidden + j], n = activated[row + 2 * hidden + j];
        gru_gate_gradients(grad[k], h[k], r, z, n, hidden_n[k], row, j, hidden, grad_a, grad_b);
        grad_h[k] = grad[k] * z;
    }
}
""")


def _output(like: Any, out: Any) -> Any:
    return empty(like) if out is None else out


def lstm_pointwise(gates: Any, c_prev: Any, c: Any = None, tanh_c: Any = None, h: Any = None
                   ) -> tuple[Any, Any, Any]:
    """Fused :func:`tinydl.functional.recurrent.lstm_pointwise`: ``gates`` (batch, 4H), C-contiguous, activated
    in place; returns (c', tanh(c'), h'), written into ``c``, ``tanh_c``, ``h`` when given (C-contiguous)."""
    c_prev = as_contiguous(c_prev)
    c, tanh_c, h = (_output(c_prev, out) for out in (c, tanh_c, h))
    batch, hidden = c_prev.shape
    launch(kernel(RECURRENT, gates.dtype.name, "lstm_forward"), batch * hidden,
           (gates, c_prev, c, tanh_c, h, size(batch), size(hidden)))
    return c, tanh_c, h


def lstm_pointwise_backward(activated: Any, c_prev: Any, tanh_c: Any, grad_h: Any, grad_c: Any,
                            grad_gates: Any = None) -> tuple[Any, Any]:
    """Fused :func:`tinydl.functional.recurrent.lstm_pointwise_backward`: returns (gradient of the
    pre-activation gates, written into ``grad_gates`` when given (C-contiguous), gradient of c_prev)."""
    activated, c_prev, tanh_c, grad_h, grad_c = (as_contiguous(a) for a in (activated, c_prev, tanh_c, grad_h,
                                                                             grad_c))
    grad_gates = _output(activated, grad_gates)
    grad_c_prev = empty(c_prev)
    batch, hidden = c_prev.shape
    launch(kernel(RECURRENT, activated.dtype.name, "lstm_backward"), batch * hidden,
           (activated, c_prev, tanh_c, grad_h, grad_c, grad_gates, grad_c_prev, size(batch), size(hidden)))
    return grad_gates, grad_c_prev


def gru_gates(input_gates: Any, hidden_gates: Any, hx: Any) -> Any:
    """h' = n + z (h - n) of one GRU step from the two projections (batch, 3H) and h (batch, H)."""
    input_gates, hidden_gates, hx = (as_contiguous(a) for a in (input_gates, hidden_gates, hx))
    h_next = empty(hx)
    batch, hidden = hx.shape
    launch(kernel(RECURRENT, hx.dtype.name, "gru_forward"), batch * hidden,
           (input_gates, hidden_gates, hx, h_next, size(batch), size(hidden)))
    return h_next


def gru_gates_backward(input_gates: Any, hidden_gates: Any, hx: Any, grad: Any) -> tuple[Any, Any, Any]:
    """(d input_gates, d hidden_gates, d hx) of one GRU step, given the gradient of h'."""
    input_gates, hidden_gates, hx, grad = (as_contiguous(a) for a in (input_gates, hidden_gates, hx, grad))
    grad_input, grad_hidden, grad_h = empty(input_gates), empty(hidden_gates), empty(hx)
    batch, hidden = hx.shape
    launch(kernel(RECURRENT, hx.dtype.name, "gru_backward"), batch * hidden,
           (input_gates, hidden_gates, hx, grad, grad_input, grad_hidden, grad_h, size(batch), size(hidden)))
    return grad_input, grad_hidden, grad_h


def gru_pointwise(input_gates: Any, hidden_gates: Any, h_prev: Any, activated: Any, hidden_n: Any, out: Any) -> Any:
    """Fused :func:`tinydl.functional.recurrent.gru_pointwise`: r, z, n into ``activated`` (batch, 3H), b_n into
    ``hidden_n`` (batch, H) unless it is None, h' into ``out``; the written arrays must be C-contiguous."""
    input_gates, hidden_gates, h_prev = (as_contiguous(a) for a in (input_gates, hidden_gates, h_prev))
    batch, hidden = h_prev.shape
    store = hidden_n is not None
    launch(kernel(RECURRENT, h_prev.dtype.name, "gru_sequence_forward"), batch * hidden,
           (input_gates, hidden_gates, h_prev, activated, hidden_n if store else out, out, flag(store),
            size(batch), size(hidden)))
    return out


def gru_pointwise_backward(activated: Any, hidden_n: Any, h_prev: Any, grad: Any, grad_input: Any,
                           grad_hidden: Any) -> Any:
    """Fused :func:`tinydl.functional.recurrent.gru_pointwise_backward`: the gradients of the input and hidden
    projections into the C-contiguous ``grad_input`` and ``grad_hidden``; returns the direct part g z of dh."""
    activated, hidden_n, h_prev, grad = (as_contiguous(a) for a in (activated, hidden_n, h_prev, grad))
    batch, hidden = h_prev.shape
    grad_h = empty(h_prev)
    launch(kernel(RECURRENT, h_prev.dtype.name, "gru_sequence_backward"), batch * hidden,
           (activated, hidden_n, h_prev, grad, grad_input, grad_hidden, grad_h, size(batch), size(hidden)))
    return grad_h
