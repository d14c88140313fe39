"""Recurrent cells (Elman RNN, LSTM, GRU) with PyTorch's parameter layouts, and the fused LSTM sequence kernel.

Every cell maps an input x (batch, input_size) and a hidden state h (batch, hidden) to the next hidden state.
Weights stack the gates row-wise, as in PyTorch: ``w_ih`` is (gates * hidden, input_size), ``w_hh`` is
(gates * hidden, hidden), the biases (gates * hidden,), so one matrix product computes every gate at once.

* Elman:  h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act = tanh or relu.
* LSTM, gates (i, f, g, o):  [i f g o] = x W_ih^T + b_ih + h W_hh^T + b_hh, then
  i, f, o through sigmoid, g through tanh,  c' = f * c + i * g,  h' = o * tanh(c').
* GRU, gates (r, z, n):  r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr),  z likewise with the z rows,
  n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn)),  h' = (1 - z) * n + z * h.

The Elman and GRU cells are compositions of differentiable ops (so twice differentiable). The LSTM cell is one
fused Function with a closed-form backward on raw arrays (once differentiable), and :func:`lstm_sequence` runs
the recurrence of a whole LSTM layer in one Function, so backpropagation through time is one loop of array
maths and the gradient of W_hh is a single matrix product over all time steps.
"""
from __future__ import annotations

from typing import Any

from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor
from .activation import relu, sigmoid, tanh
from .linalg import linear
from .shape import chunk

__all__ = ["rnn_tanh_cell", "rnn_relu_cell", "lstm_cell", "gru_cell", "lstm_sequence"]


# ----------------------------------------------------------------------------------------- LSTM gate maths
def _gates(activated: Any) -> tuple[Any, Any, Any, Any]:
    """The views i, f, g, o of a (batch, 4H) array of gates."""
    hidden = activated.shape[-1] // 4
    return tuple(activated[..., k * hidden:(k + 1) * hidden] for k in range(4))  # type: ignore[return-value]


def lstm_pointwise(gates: Any, c_prev: Any, c: Any = None, tanh_c: Any = None, h: Any = None
                   ) -> tuple[Any, Any, Any]:
    """The elementwise part of an LSTM step on raw arrays.

    ``gates`` (batch, 4H), the pre-activations [i f g o], are activated in place: one tanh for all four, since
    sigmoid(x) = 1/2 + 1/2 tanh(x/2). Returns the new cell state c' = f c + i g, tanh(c') and the new hidden
    state h' = o tanh(c'), written into ``c``, ``tanh_c`` and ``h`` when those arrays are given.
    """
    xp = get_array_module(gates)
    hidden = gates.shape[-1] // 4
    sigmoid_parts = (gates[..., :2 * hidden], gates[..., 3 * hidden:])   # i, f and o
    for part in sigmoid_parts:
        part *= 0.5
    xp.tanh(gates, out=gates)
    for part in sigmoid_parts:
        part *= 0.5
        part += 0.5
    i, f, g, o = _gates(gates)
    c = xp.multiply(f, c_prev, out=c)
    c += i * g
    tanh_c = xp.tanh(c, out=tanh_c)
    return c, tanh_c, xp.multiply(o, tanh_c, out=h)


def lstm_pointwise_backward(activated: Any, c_prev: Any, tanh_c: Any, grad_h: Any, grad_c: Any,
                            grad_gates: Any = None) -> tuple[Any, Any]:
    """Gradients of one LSTM step's elementwise part, on raw arrays.

    With dc = grad_c + grad_h * o * (1 - tanh(c')^2) the total gradient reaching c':
    di = dc * g,  df = dc * c,  dg = dc * i,  do = grad_h * tanh(c'), each times its activation's derivative
    (s (1 - s) for a sigmoid s, 1 - t^2 for a tanh t), and dc_prev = dc * f.
    Returns (gradient of the pre-activation gates (batch, 4H), written into ``grad_gates`` when given,
    gradient of c_prev).
    """
    xp = get_array_module(activated)
    i, f, g, o = _gates(activated)
    grad_cell = grad_h * o * (1 - tanh_c * tanh_c)
    grad_cell += grad_c
    if grad_gates is None:
        grad_gates = xp.empty_like(activated)
    grad_i, grad_f, grad_g, grad_o = _gates(grad_gates)
    grad_i[...] = grad_cell * g * i * (1 - i)
    grad_f[...] = grad_cell * c_prev * f * (1 - f)
    grad_g[...] = grad_cell * i * (1 - g * g)
    grad_o[...] = grad_h * tanh_c * o * (1 - o)
    return grad_gates, grad_cell * f


class LSTMCell(Function):
    """One LSTM step, fused: gates = x W_ih^T + h W_hh^T (+ b_ih + b_hh), all four gates by one product with
    each stacked weight, then :func:`lstm_pointwise`. Backward, closed form (``lstm_pointwise_backward`` gives
    dgates): dx = dgates W_ih, dh = dgates W_hh, dW_ih = dgates^T x, dW_hh = dgates^T h, db_ih = db_hh = sum
    of dgates over the batch. Differentiable once."""

    saved_inputs, saves_outputs = (0, 1, 2, 3, 4), False

    name = "lstm_cell"
    once_differentiable = True

    def forward(self, x, hx, cx, w_ih, w_hh, b_ih=None, b_hh=None):
        gates = x @ w_ih.T
        gates += hx @ w_hh.T
        if b_ih is not None:
            gates += b_ih
            gates += b_hh
        c, tanh_c, h = lstm_pointwise(gates, cx)
        if any(self.needs_input_grad):
            self.activated, self.tanh_c = gates, tanh_c
        return h, c

    def backward(self, grad_h, grad_c):
        x, hx, cx, w_ih, w_hh = (t.data for t in self.inputs[:5])
        grad_gates, grad_cx = lstm_pointwise_backward(self.activated, cx, self.tanh_c, grad_h.data, grad_c.data)
        needs = self.needs_input_grad
        grads = [grad_gates @ w_ih if needs[0] else None,
                 grad_gates @ w_hh if needs[1] else None,
                 grad_cx if needs[2] else None,
                 grad_gates.T @ x if needs[3] else None,
                 grad_gates.T @ hx if needs[4] else None]
        if len(self.inputs) == 7:
            grad_bias = grad_gates.sum(axis=0) if needs[5] or needs[6] else None
            grads += [grad_bias if needs[5] else None, grad_bias if needs[6] else None]
        return tuple(None if g is None else Tensor._from_array(g) for g in grads)


class LSTMSequence(Function):
    """The recurrence of one LSTM layer over a whole sequence, fused.

    Input: the input projections of every step, ``input_gates`` (T, batch, 4H) = x_t W_ih^T + b_ih + b_hh
    (computed for all steps by one matrix product before the loop), the initial state h0, c0 (batch, H) and W_hh.
    Forward, for t = 0..T-1 (T-1..0 when ``reverse``): gates_t = input_gates[t] + h_{t-1} W_hh^T, then
    :func:`lstm_pointwise`. Outputs every h_t (T, batch, H) in time order, and the final h and c.

    Backward through time runs the loop in the opposite order, carrying dh and dc from step to step:
    dh_{t-1} = dgates_t W_hh (plus the gradient of output t-1), dc_{t-1} from :func:`lstm_pointwise_backward`;
    the gradient of input_gates is every dgates_t, and dW_hh = sum_t dgates_t^T h_{t-1} is one matrix product
    over all steps. Differentiable once.
    """

    name = "lstm_sequence"
    once_differentiable = True

    def __init__(self, reverse: bool):
        self.reverse = reverse

    def _steps(self, length: int) -> range:
        return range(length - 1, -1, -1) if self.reverse else range(length)

    def forward(self, input_gates, h0, c0, w_hh):
        xp = get_array_module(input_gates)
        length, batch, hidden = input_gates.shape[0], h0.shape[0], h0.shape[1]
        outputs = xp.empty((length, batch, hidden), dtype=input_gates.dtype)
        record = any(self.needs_input_grad)
        if record:  # every step's gates and cell state are kept for backward
            self.outputs = outputs  # the h_t, shared with output 0 (which the caller may drop before backward)
            self.activated = xp.empty(input_gates.shape, dtype=input_gates.dtype)
            self.cells = xp.empty((length, batch, hidden), dtype=input_gates.dtype)
            self.tanh_cells = xp.empty((length, batch, hidden), dtype=input_gates.dtype)
        else:  # one slot each, overwritten at every step
            scratch_gates = xp.empty((batch, 4 * hidden), dtype=input_gates.dtype)
            scratch_cells = xp.empty((2, batch, hidden), dtype=input_gates.dtype)
        h, c = h0, c0
        w_hh_t = xp.ascontiguousarray(w_hh.T)  # one copy; a product with a transposed view is slower per step
        for t in self._steps(length):
            gates = xp.matmul(h, w_hh_t, out=self.activated[t] if record else scratch_gates)
            gates += input_gates[t]
            cell_slots = (self.cells[t], self.tanh_cells[t]) if record else scratch_cells
            c, _, h = lstm_pointwise(gates, c, *cell_slots, h=outputs[t])
        return outputs, h.copy(), c.copy()

    def backward(self, grad_outputs, grad_h_last, grad_c_last):
        input_gates, h0, c0, w_hh = (t.data for t in self.inputs)
        xp = get_array_module(input_gates)
        outputs = self.outputs
        length = input_gates.shape[0]
        steps = list(self._steps(length))
        grad_gates = xp.empty_like(input_gates)
        grad_h, grad_c = grad_h_last.data, grad_c_last.data
        for position in range(length - 1, -1, -1):  # the forward order, walked backwards
            t = steps[position]
            previous = steps[position - 1] if position > 0 else None
            c_prev = c0 if previous is None else self.cells[previous]
            _, grad_c = lstm_pointwise_backward(self.activated[t], c_prev, self.tanh_cells[t],
                                                grad_h + grad_outputs.data[t], grad_c, grad_gates[t])
            grad_h = grad_gates[t] @ w_hh
        grad_w_hh = None
        if self.needs_input_grad[3]:
            # h_{t-1} for every step, aligned with grad_gates: the outputs shifted by one step, h0 first
            h_prev = xp.empty_like(outputs)
            if self.reverse:
                h_prev[:-1], h_prev[-1] = outputs[1:], h0
            else:
                h_prev[1:], h_prev[0] = outputs[:-1], h0
            flat = grad_gates.reshape(-1, grad_gates.shape[-1])
            grad_w_hh = Tensor._from_array(flat.T @ h_prev.reshape(-1, h_prev.shape[-1]))
        return (Tensor._from_array(grad_gates), Tensor._from_array(grad_h), Tensor._from_array(grad_c),
                grad_w_hh)


# -------------------------------------------------------------------------------------------- validation
def _shape(t: Any) -> tuple | None:
    return None if t is None else tuple(t.shape)


def check_cell_arguments(op: str, input: Tensor, states: tuple[Tensor, ...], w_ih: Tensor, w_hh: Tensor,
                         b_ih: Tensor | None, b_hh: Tensor | None, gates: int) -> None:
    """Raise a ValueError naming ``op`` and the expected and found shapes when the arguments of a cell do not
    fit together (input (batch, in) or (in,), states (batch, H) or (H,), PyTorch's stacked weight layout)."""
    if w_hh.ndim != 2 or w_hh.shape[0] != gates * w_hh.shape[1]:
        raise ValueError(f"{op}: expected w_hh of shape ({gates} * hidden_size, hidden_size), found "
                         f"{_shape(w_hh)}")
    hidden = w_hh.shape[1]
    if w_ih.ndim != 2 or w_ih.shape[0] != gates * hidden:
        raise ValueError(f"{op}: expected w_ih of shape ({gates * hidden}, input_size) to match w_hh "
                         f"{_shape(w_hh)}, found {_shape(w_ih)}")
    if input.ndim not in (1, 2):
        raise ValueError(f"{op}: expected input of shape (batch, {w_ih.shape[1]}) or ({w_ih.shape[1]},), found a "
                         f"{input.ndim}-D input of shape {_shape(input)}")
    if input.shape[-1] != w_ih.shape[1]:
        raise ValueError(f"{op}: input has feature size {input.shape[-1]} (shape {_shape(input)}), but w_ih "
                         f"{_shape(w_ih)} expects input_size {w_ih.shape[1]}")
    expected_state = input.shape[:-1] + (hidden,)
    for name, state in zip(("hx", "cx"), states):
        if tuple(state.shape) != expected_state:
            raise ValueError(f"{op}: expected {name} of shape {expected_state} for input of shape "
                             f"{_shape(input)}, found {_shape(state)}")
    if (b_ih is None) != (b_hh is None):
        raise ValueError(f"{op}: give both biases or neither, found b_ih {_shape(b_ih)} and b_hh {_shape(b_hh)}")
    for name, bias in (("b_ih", b_ih), ("b_hh", b_hh)):
        if bias is not None and tuple(bias.shape) != (gates * hidden,):
            raise ValueError(f"{op}: expected {name} of shape ({gates * hidden},), found {_shape(bias)}")


def _batched(input: Tensor, *states: Tensor) -> tuple[bool, tuple[Tensor, ...]]:
    """(whether the call was unbatched, the input and states with a batch axis)."""
    if input.ndim == 2:
        return False, (input,) + states
    return True, tuple(t.unsqueeze(0) for t in (input,) + states)


# ------------------------------------------------------------------------------------------ public functions
def rnn_step(input_gates: Tensor, hx: Tensor, w_hh: Tensor, b_hh: Tensor | None, nonlinearity: str) -> Tensor:
    """One Elman step given the input projection ``input_gates`` = x W_ih^T + b_ih (as computed for a whole
    sequence by an RNN layer): act(input_gates + h W_hh^T + b_hh)."""
    pre_activation = input_gates + linear(hx, w_hh, b_hh)
    return tanh(pre_activation) if nonlinearity == "tanh" else relu(pre_activation)


def gru_step(input_gates: Tensor, hx: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    """One GRU step given the input projection ``input_gates`` = x W_ih^T + b_ih, gates (r, z, n)."""
    input_r, input_z, input_n = chunk(input_gates, 3, -1)
    hidden_r, hidden_z, hidden_n = chunk(linear(hx, w_hh, b_hh), 3, -1)
    reset = sigmoid(input_r + hidden_r)
    update = sigmoid(input_z + hidden_z)
    candidate = tanh(input_n + reset * hidden_n)
    return candidate + update * (hx - candidate)


def _elman_cell(op: str, nonlinearity: str, input: Tensor, hx: Tensor, w_ih: Tensor, w_hh: Tensor,
                b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor:
    check_cell_arguments(op, input, (hx,), w_ih, w_hh, b_ih, b_hh, gates=1)
    unbatched, (input, hx) = _batched(input, hx)
    h = rnn_step(linear(input, w_ih, b_ih), hx, w_hh, b_hh, nonlinearity)
    return h.squeeze(0) if unbatched else h


def rnn_tanh_cell(input: Tensor, hx: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,
                  b_hh: Tensor | None = None) -> Tensor:
    """Elman cell h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh); input (batch, in) or (in,)."""
    return _elman_cell("rnn_tanh_cell", "tanh", input, hx, w_ih, w_hh, b_ih, b_hh)


def rnn_relu_cell(input: Tensor, hx: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,
                  b_hh: Tensor | None = None) -> Tensor:
    """Elman cell h' = relu(x W_ih^T + b_ih + h W_hh^T + b_hh); input (batch, in) or (in,)."""
    return _elman_cell("rnn_relu_cell", "relu", input, hx, w_ih, w_hh, b_ih, b_hh)


def gru_cell(input: Tensor, hx: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,
             b_hh: Tensor | None = None) -> Tensor:
    """GRU cell, gates (r, z, n) stacked in the weights' rows: n = tanh(W_in x + b_in + r (W_hn h + b_hn)),
    h' = (1 - z) n + z h."""
    check_cell_arguments("gru_cell", input, (hx,), w_ih, w_hh, b_ih, b_hh, gates=3)
    unbatched, (input, hx) = _batched(input, hx)
    h = gru_step(linear(input, w_ih, b_ih), hx, w_hh, b_hh)
    return h.squeeze(0) if unbatched else h


def lstm_cell(input: Tensor, hx: tuple[Tensor, Tensor], w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,
              b_hh: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """LSTM cell, gates (i, f, g, o): returns (h', c'). One fused op, differentiable once (its backward is a
    closed-form kernel; second derivatives raise)."""
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise TypeError(f"lstm_cell: hx must be a pair (h, c) of tensors, found {type(hx).__name__}")
    h, c = hx
    check_cell_arguments("lstm_cell", input, (h, c), w_ih, w_hh, b_ih, b_hh, gates=4)
    unbatched, (input, h, c) = _batched(input, h, c)
    biases = () if b_ih is None else (b_ih, b_hh)
    h, c = LSTMCell()(input, h, c, w_ih, w_hh, *biases)
    return (h.squeeze(0), c.squeeze(0)) if unbatched else (h, c)


def lstm_sequence(input_gates: Tensor, hx: tuple[Tensor, Tensor], w_hh: Tensor, reverse: bool = False
                  ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """The recurrence of one LSTM layer: ``input_gates`` (T, batch, 4H) are the input projections
    x_t W_ih^T + b_ih + b_hh of every step, ``hx`` = (h0, c0) of shape (batch, H). Returns (output (T, batch, H),
    (h_n, c_n)) like one direction of ``torch.nn.LSTM``; ``reverse`` runs from the last step to the first."""
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise TypeError(f"lstm_sequence: hx must be a pair (h0, c0) of tensors, found {type(hx).__name__}")
    h0, c0 = hx
    if w_hh.ndim != 2 or w_hh.shape[0] != 4 * w_hh.shape[1]:
        raise ValueError(f"lstm_sequence: expected w_hh of shape (4 * hidden_size, hidden_size), found "
                         f"{_shape(w_hh)}")
    hidden = w_hh.shape[1]
    if input_gates.ndim != 3 or input_gates.shape[-1] != 4 * hidden or input_gates.shape[0] == 0:
        raise ValueError(f"lstm_sequence: expected input_gates of shape (seq_len, batch, {4 * hidden}), found "
                         f"{_shape(input_gates)}")
    expected_state = (input_gates.shape[1], hidden)
    for name, state in (("h0", h0), ("c0", c0)):
        if tuple(state.shape) != expected_state:
            raise ValueError(f"lstm_sequence: expected {name} of shape {expected_state}, found {_shape(state)}")
    output, h, c = LSTMSequence(reverse)(input_gates, h0, c0, w_hh)
    return output, (h, c)
