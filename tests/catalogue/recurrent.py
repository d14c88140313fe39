"""Catalogue entries for the recurrent cells and the fused LSTM sequence kernel.

The references are written gate by gate in plain NumPy: each gate uses its own block of rows of the stacked
weights (W_ii, W_if, ... as separate matrices), and sequences are unrolled step by step.
"""
import numpy as np
from hypothesis import strategies as st

import tinydl.functional as F
from tinydl.testing import Case, OpSpec, arrays

GATES = {"rnn_tanh_cell": 1, "rnn_relu_cell": 1, "gru_cell": 3, "lstm_cell": 4}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _blocks(weight, count):
    """The per-gate matrices stacked in ``weight``'s rows."""
    rows = weight.shape[0] // count
    return [weight[k * rows:(k + 1) * rows] for k in range(count)]


def _affine(x, weights, biases, k):
    """x W_k^T + b_k for gate k (no bias when biases is None)."""
    result = x @ weights[k].T
    return result if biases is None else result + biases[k]


def _split_biases(b_ih, b_hh, count):
    if b_ih is None:
        return None, None
    return _blocks(b_ih, count), _blocks(b_hh, count)


def reference_elman(act, x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    bi, bh = _split_biases(b_ih, b_hh, 1)
    return act(_affine(x, [w_ih], bi, 0) + _affine(h, [w_hh], bh, 0))


def reference_gru(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    wi, wh = _blocks(w_ih, 3), _blocks(w_hh, 3)
    bi, bh = _split_biases(b_ih, b_hh, 3)
    r = _sigmoid(_affine(x, wi, bi, 0) + _affine(h, wh, bh, 0))
    z = _sigmoid(_affine(x, wi, bi, 1) + _affine(h, wh, bh, 1))
    n = np.tanh(_affine(x, wi, bi, 2) + r * _affine(h, wh, bh, 2))
    return (1 - z) * n + z * h


def reference_lstm(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
    wi, wh = _blocks(w_ih, 4), _blocks(w_hh, 4)
    bi, bh = _split_biases(b_ih, b_hh, 4)
    i = _sigmoid(_affine(x, wi, bi, 0) + _affine(h, wh, bh, 0))
    f = _sigmoid(_affine(x, wi, bi, 1) + _affine(h, wh, bh, 1))
    g = np.tanh(_affine(x, wi, bi, 2) + _affine(h, wh, bh, 2))
    o = _sigmoid(_affine(x, wi, bi, 3) + _affine(h, wh, bh, 3))
    c_next = f * c + i * g
    return o * np.tanh(c_next), c_next


def reference_lstm_sequence(input_gates, h, c, w_hh, reverse=False):
    """Unrolled step by step; the input projection is already in ``input_gates``, so the cell's W_ih is the
    identity (4H, 4H), whose k-th block of rows selects gate k's columns."""
    outputs = np.zeros(input_gates.shape[:2] + h.shape[-1:])
    identity = np.eye(input_gates.shape[-1])
    steps = range(input_gates.shape[0])
    for t in (reversed(steps) if reverse else steps):
        h, c = reference_lstm(input_gates[t], h, c, identity, w_hh)
        outputs[t] = h
    return outputs, h, c


# ------------------------------------------------------------------------------------------------ strategies
@st.composite
def cell_cases(draw, op_name):
    """Batched or unbatched input, hidden state(s), stacked weights, with or without biases."""
    gates = GATES[op_name]
    batch, input_size, hidden = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    lead = () if draw(st.booleans()) else (batch,)
    x = draw(arrays(lead + (input_size,), low=-2.0, high=2.0))
    states = [draw(arrays(lead + (hidden,), low=-1.0, high=1.0)) for _ in range(2 if op_name == "lstm_cell" else 1)]
    w_ih = draw(arrays((gates * hidden, input_size), low=-1.0, high=1.0))
    w_hh = draw(arrays((gates * hidden, hidden), low=-1.0, high=1.0))
    biases = [draw(arrays((gates * hidden,), low=-1.0, high=1.0)) for _ in range(2)] if draw(st.booleans()) else []
    return Case(tuple([x] + states + [w_ih, w_hh] + biases))


def _relu_away_from_kink(case, margin=1e-3):
    """relu is not differentiable at 0: keep the pre-activations away from it."""
    x, h, w_ih, w_hh, *biases = case.arrays
    pre = x @ w_ih.T + h @ w_hh.T + (biases[0] + biases[1] if biases else 0)
    return bool(np.all(np.abs(pre) > margin))


@st.composite
def sequence_cases(draw):
    """input gates (T, batch, 4H), h0, c0, W_hh, and a direction."""
    length, batch, hidden = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    input_gates = draw(arrays((length, batch, 4 * hidden), low=-2.0, high=2.0))
    h0, c0 = (draw(arrays((batch, hidden), low=-1.0, high=1.0)) for _ in range(2))
    w_hh = draw(arrays((4 * hidden, hidden), low=-1.0, high=1.0))
    return Case((input_gates, h0, c0, w_hh), {"reverse": draw(st.booleans())})


@st.composite
def layer_cases(draw):
    """input x (T, batch, I), h0, c0, W_ih, W_hh, optionally the summed bias, and a direction."""
    length, batch, hidden = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    input_size = draw(st.integers(1, 3))
    x = draw(arrays((length, batch, input_size), low=-2.0, high=2.0))
    h0, c0 = (draw(arrays((batch, hidden), low=-1.0, high=1.0)) for _ in range(2))
    w_ih = draw(arrays((4 * hidden, input_size), low=-1.0, high=1.0))
    w_hh = draw(arrays((4 * hidden, hidden), low=-1.0, high=1.0))
    bias = [draw(arrays((4 * hidden,), low=-1.0, high=1.0))] if draw(st.booleans()) else []
    return Case(tuple([x, h0, c0, w_ih, w_hh] + bias), {"reverse": draw(st.booleans())})


def reference_lstm_layer(x, h, c, w_ih, w_hh, bias=None, reverse=False):
    """The input projection by one einsum, then the unrolled sequence reference."""
    input_gates = np.einsum("tbi,gi->tbg", x, w_ih) + (0 if bias is None else bias)
    return reference_lstm_sequence(input_gates, h, c, w_hh, reverse)


@st.composite
def gru_sequence_cases(draw):
    """input gates (T, batch, 3H), h0, W_hh, optionally b_hh, and a direction."""
    length, batch, hidden = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    input_gates = draw(arrays((length, batch, 3 * hidden), low=-2.0, high=2.0))
    h0 = draw(arrays((batch, hidden), low=-1.0, high=1.0))
    w_hh = draw(arrays((3 * hidden, hidden), low=-1.0, high=1.0))
    bias = [draw(arrays((3 * hidden,), low=-1.0, high=1.0))] if draw(st.booleans()) else []
    return Case(tuple([input_gates, h0, w_hh] + bias), {"reverse": draw(st.booleans())})


@st.composite
def rnn_sequence_cases(draw, nonlinearity):
    """input gates (T, batch, H), h0, W_hh, a direction; relu cases keep every pre-activation away from 0."""
    length, batch, hidden = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    input_gates = draw(arrays((length, batch, hidden), low=-2.0, high=2.0))
    h0 = draw(arrays((batch, hidden), low=-1.0, high=1.0))
    w_hh = draw(arrays((hidden, hidden), low=-1.0, high=1.0))
    return Case((input_gates, h0, w_hh), {"nonlinearity": nonlinearity, "reverse": draw(st.booleans())})


def reference_gru_sequence(input_gates, h, w_hh, b_hh=None, reverse=False):
    """Unrolled step by step with the GRU cell reference; W_ih is the identity (3H, 3H) and b_ih is zero, so the
    cell's input projection is ``input_gates[t]`` itself."""
    outputs = np.zeros(input_gates.shape[:2] + h.shape[-1:])
    identity = np.eye(input_gates.shape[-1])
    biases = () if b_hh is None else (np.zeros_like(b_hh), b_hh)
    steps = range(input_gates.shape[0])
    for t in (reversed(steps) if reverse else steps):
        h = outputs[t] = reference_gru(input_gates[t], h, identity, w_hh, *biases)
    return outputs, h


def reference_rnn_sequence(input_gates, h, w_hh, nonlinearity="tanh", reverse=False):
    act = np.tanh if nonlinearity == "tanh" else (lambda v: np.maximum(v, 0))
    outputs = np.zeros(input_gates.shape)
    steps = range(input_gates.shape[0])
    for t in (reversed(steps) if reverse else steps):
        h = outputs[t] = reference_elman(act, input_gates[t], h, np.eye(input_gates.shape[-1]), w_hh)
    return outputs, h


def _relu_sequence_away_from_kink(case, margin=1e-3):
    """Every pre-activation of the relu recurrence at least ``margin`` away from relu's kink at 0."""
    input_gates, h, w_hh = case.arrays
    steps = range(input_gates.shape[0])
    for t in (reversed(steps) if case.kwargs["reverse"] else steps):
        pre = input_gates[t] + h @ w_hh.T
        if np.any(np.abs(pre) <= margin):
            return False
        h = np.maximum(pre, 0)
    return True


def _lstm_cell(x, h, c, w_ih, w_hh, *biases):
    return F.lstm_cell(x, (h, c), w_ih, w_hh, *biases)


def _lstm_sequence(input_gates, h0, c0, w_hh, reverse):
    output, (h, c) = F.lstm_sequence(input_gates, (h0, c0), w_hh, reverse=reverse)
    return output, h, c


def _lstm_layer(x, h0, c0, w_ih, w_hh, *bias, reverse):
    output, (h, c) = F.lstm_layer(x, (h0, c0), w_ih, w_hh, *bias, reverse=reverse)
    return output, h, c


SPECS = [
    OpSpec("rnn_tanh_cell", F.rnn_tanh_cell, cell_cases("rnn_tanh_cell"),
           lambda *a: reference_elman(np.tanh, *a)),
    OpSpec("rnn_relu_cell", F.rnn_relu_cell, cell_cases("rnn_relu_cell").filter(_relu_away_from_kink),
           lambda *a: reference_elman(lambda v: np.maximum(v, 0), *a)),
    OpSpec("gru_cell", F.gru_cell, cell_cases("gru_cell"), reference_gru),
    OpSpec("lstm_cell", _lstm_cell, cell_cases("lstm_cell"), reference_lstm, twice_differentiable=False),
    OpSpec("lstm_sequence", _lstm_sequence, sequence_cases(), reference_lstm_sequence, twice_differentiable=False),
    OpSpec("lstm_layer", _lstm_layer, layer_cases(), reference_lstm_layer, twice_differentiable=False),
    OpSpec("gru_sequence", F.gru_sequence, gru_sequence_cases(), reference_gru_sequence,
           twice_differentiable=False),
    OpSpec("rnn_sequence", F.rnn_sequence, rnn_sequence_cases("tanh"), reference_rnn_sequence,
           twice_differentiable=False),
    OpSpec("rnn_sequence", F.rnn_sequence, rnn_sequence_cases("relu").filter(_relu_sequence_away_from_kink),
           reference_rnn_sequence, twice_differentiable=False),
]
