"""Recurrent cells (Elman RNN, LSTM, GRU) with PyTorch's parameter layouts, and the fused LSTM sequence kernel.

Every cell maps an input x (batch, input_size) and a hidden state h (batch, hidden) to the next hidden state.
Weights stack the gates row-wise, as in PyTorch: ``w_ih`` is (gates * hidden, input_size), ``w_hh`` is
(gates * hidden, hidden), the biases (gates * hidden,), so one matrix product computes every gate at once.

* Elman:  h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act = tanh or relu.
* LSTM, gates (i, f, g, o):  [i f g o] = x W_ih^T + b_ih + h W_hh^T + b_hh, then
  i, f, o through sigmoid, g through tanh,  c' = f * c + i * g,  h' = o * tanh(c').
* GRU, gates (r, z, n):  r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr),  z likewise with the z rows,
  n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn)),  h' = (1 - z) * n + z * h.

The Elman cell is a composition of differentiable ops, and the GRU cell's gate maths one Function
(:class:`GRUGates`) whose backward is written with tinydl ops when it is itself differentiated (both twice
differentiable). The LSTM cell is one fused Function with a closed-form backward on raw arrays (once
differentiable). :func:`lstm_sequence`, :func:`gru_sequence` and :func:`rnn_sequence` run the recurrence of a whole
layer in one Function each: the input projections of every step arrive precomputed (one matrix product before the
loop), the loop adds h_{t-1} W_hh^T and applies the gate maths in place, backpropagation through time is one loop
of array maths, and the gradient of W_hh is a single matrix product over all time steps. They are differentiable
once; the layers in :mod:`tinydl.nn` keep the composed step-by-step path beside them (``layer.fused = False``) as
the reference. On CuPy arrays with fusion on, the LSTM and GRU gate maths run as fused CUDA kernels
(:mod:`tinydl.kernels.cuda.recurrent`).
"""
from __future__ import annotations

from typing import Any

from ..autograd import Function, is_grad_enabled
from ..backend import get_array_module
from ..kernels.cuda import recurrent as fused
from ..kernels.cuda.build import can_fuse, contiguous
from ..kernels.recurrent import gru_gates, gru_gates_backward
from ..kernels.scratch import scratch
from ..tensor import Tensor
from .activation import relu, sigmoid, tanh
from ._operands import operands
from .linalg import linear
from .shape import cat, chunk

__all__ = ["rnn_tanh_cell", "rnn_relu_cell", "lstm_cell", "gru_cell", "lstm_sequence", "lstm_layer",
           "gru_sequence", "rnn_sequence"]


# ----------------------------------------------------------------------------------------- gate maths
def _gates(activated: Any, count: int = 4) -> tuple[Any, ...]:
    """The views of a (batch, count * H) array of stacked gates: i, f, g, o for an LSTM, r, z, n for a GRU."""
    hidden = activated.shape[-1] // count
    return tuple(activated[..., k * hidden:(k + 1) * hidden] for k in range(count))


def _sigmoid_(x: Any) -> Any:
    """sigmoid(x) in place, through one tanh: sigmoid(x) = 1/2 + 1/2 tanh(x / 2)."""
    xp = get_array_module(x)
    x *= 0.5
    xp.tanh(x, out=x)
    x *= 0.5
    x += 0.5
    return x


def lstm_constants(xp: Any, dtype: Any, hidden: int) -> tuple[Any, Any, Any]:
    """Per-column constants of the stacked gates [i f g o], so that every gate is activated by the same three
    whole-array operations: ``scale`` and ``shift`` with act(x) = shift + scale tanh(scale x), which is
    sigmoid(x) = 1/2 + 1/2 tanh(x/2) for i, f, o (scale 1/2, shift 1/2) and tanh(x) for g (1, 0); and ``offset``
    with act'(x) = (1 - a) (a + offset) for a = act(x): s (1 - s) for a sigmoid (offset 0), 1 - t^2 for a tanh (1)."""
    half, one, zero = (xp.full(hidden, value, dtype) for value in (0.5, 1.0, 0.0))
    return (xp.concatenate([half, half, one, half]), xp.concatenate([half, half, zero, half]),
            xp.concatenate([zero, zero, one, zero]))


def lstm_pointwise(gates: Any, c_prev: Any, c: Any = None, tanh_c: Any = None, h: Any = None,
                   constants: tuple[Any, Any, Any] | None = None) -> tuple[Any, Any, Any]:
    """The elementwise part of an LSTM step on raw arrays.

    ``gates`` (batch, 4H), the pre-activations [i f g o], are activated in place by one tanh for all four (see
    :func:`lstm_constants`, which the caller may pass to spare building them every step). Returns the new cell
    state c' = f c + i g, tanh(c') and the new hidden state h' = o tanh(c'), written into ``c``, ``tanh_c`` and
    ``h`` when those arrays are given. On CuPy arrays with fusion on, one CUDA kernel does it all
    (:func:`tinydl.kernels.cuda.recurrent.lstm_pointwise`).
    """
    given = [a for a in (c, tanh_c, h) if a is not None]
    if (can_fuse(gates, c_prev) and contiguous(gates, *given) and gates.ndim == 2
            and c_prev.shape == (gates.shape[0], gates.shape[1] // 4)):
        return fused.lstm_pointwise(gates, c_prev, c, tanh_c, h)
    xp = get_array_module(gates)
    scale, shift, _ = constants or lstm_constants(xp, gates.dtype, gates.shape[-1] // 4)
    gates *= scale
    xp.tanh(gates, out=gates)
    gates *= scale
    gates += shift
    i, f, g, o = _gates(gates)
    c = xp.multiply(f, c_prev, out=c)
    c += i * g
    tanh_c = xp.tanh(c, out=tanh_c)
    return c, tanh_c, xp.multiply(o, tanh_c, out=h)


def lstm_pointwise_backward(activated: Any, c_prev: Any, tanh_c: Any, grad_h: Any, grad_c: Any,
                            grad_gates: Any = None, constants: tuple[Any, Any, Any] | None = None
                            ) -> tuple[Any, Any]:
    """Gradients of one LSTM step's elementwise part, on raw arrays.

    With dc = grad_c + grad_h * o * (1 - tanh(c')^2) the total gradient reaching c':
    di = dc * g,  df = dc * c,  dg = dc * i,  do = grad_h * tanh(c'), each times its activation's derivative
    (s (1 - s) for a sigmoid s, 1 - t^2 for a tanh t: one product with (1 - a) (a + offset) over all four gates,
    :func:`lstm_constants`), and dc_prev = dc * f.
    Returns (gradient of the pre-activation gates (batch, 4H), written into ``grad_gates`` when given,
    gradient of c_prev). Fused into one CUDA kernel on CuPy arrays with fusion on.
    """
    if (can_fuse(activated, c_prev, tanh_c, grad_h, grad_c) and activated.ndim == 2
            and (grad_gates is None or contiguous(grad_gates))
            and c_prev.shape == tanh_c.shape == grad_h.shape == grad_c.shape == (activated.shape[0],
                                                                                 activated.shape[1] // 4)):
        return fused.lstm_pointwise_backward(activated, c_prev, tanh_c, grad_h, grad_c, grad_gates)
    xp = get_array_module(activated)
    _, _, offset = constants or lstm_constants(xp, activated.dtype, activated.shape[-1] // 4)
    i, f, g, o = _gates(activated)
    grad_cell = tanh_c * tanh_c
    xp.subtract(1, grad_cell, out=grad_cell)
    grad_cell *= o
    grad_cell *= grad_h
    grad_cell += grad_c
    if grad_gates is None:
        grad_gates = xp.empty_like(activated)
    grad_i, grad_f, grad_g, grad_o = _gates(grad_gates)
    xp.multiply(grad_cell, g, out=grad_i)
    xp.multiply(grad_cell, c_prev, out=grad_f)
    xp.multiply(grad_cell, i, out=grad_g)
    xp.multiply(grad_h, tanh_c, out=grad_o)
    slope = xp.subtract(1, activated)
    slope *= activated + offset
    grad_gates *= slope
    return grad_gates, grad_cell * f


def gru_pointwise(input_gates: Any, hidden_gates: Any, h_prev: Any, activated: Any, hidden_n: Any, out: Any
                  ) -> Any:
    """The elementwise part of one GRU step on raw arrays (the module docstring's formulas): r, z and n written
    into ``activated`` (batch, 3H), b_n into ``hidden_n`` (batch, H) unless it is None, and h' = n + z (h - n)
    into ``out``, which is returned. One CUDA kernel on CuPy arrays with fusion on."""
    written = [a for a in (activated, hidden_n, out) if a is not None]
    if can_fuse(input_gates, hidden_gates, h_prev, *written) and contiguous(*written):
        return fused.gru_pointwise(input_gates, hidden_gates, h_prev, activated, hidden_n, out)
    xp = get_array_module(input_gates)
    hidden = h_prev.shape[-1]
    reset_update = xp.add(input_gates[:, :2 * hidden], hidden_gates[:, :2 * hidden], out=activated[:, :2 * hidden])
    _sigmoid_(reset_update)
    r, z, n = _gates(activated, 3)
    hn = hidden_gates[:, 2 * hidden:]
    if hidden_n is not None:
        hidden_n[...] = hn
    xp.multiply(r, hn, out=n)
    n += input_gates[:, 2 * hidden:]
    xp.tanh(n, out=n)
    h_t = xp.subtract(h_prev, n, out=out)
    h_t *= z
    h_t += n
    return h_t


def gru_pointwise_backward(activated: Any, hidden_n: Any, h_prev: Any, grad: Any, grad_input: Any,
                           grad_hidden: Any) -> Any:
    """Gradients of one GRU step's elementwise part from its saved r, z, n and b_n, given the gradient ``grad``
    of h': (dr, dz, dn) of the pre-activations into ``grad_input``, the same with dn r in the n block into
    ``grad_hidden`` (the gradient of h W_hh^T + b_hh), and the direct part g z of dh returned. One CUDA kernel
    on CuPy arrays with fusion on."""
    if can_fuse(activated, hidden_n, h_prev, grad, grad_input, grad_hidden) and contiguous(grad_input, grad_hidden):
        return fused.gru_pointwise_backward(activated, hidden_n, h_prev, grad, grad_input, grad_hidden)
    xp = get_array_module(activated)
    r, z, n = _gates(activated, 3)
    grad_r, grad_z, grad_n = _gates(grad_input, 3)
    xp.multiply(grad * (1 - z), 1 - n * n, out=grad_n)
    xp.multiply(grad * (h_prev - n), z * (1 - z), out=grad_z)
    xp.multiply(grad_n * hidden_n, r * (1 - r), out=grad_r)
    grad_hidden[...] = grad_input
    grad_hidden[:, 2 * grad_n.shape[-1]:] *= r
    return grad * z


class LSTMCell(Function):
    """One LSTM step, fused: gates = x W_ih^T + h W_hh^T (+ b_ih + b_hh), all four gates by one product with
    each stacked weight, then :func:`lstm_pointwise`. Backward, closed form (``lstm_pointwise_backward`` gives
    dgates): dx = dgates W_ih, dh = dgates W_hh, dW_ih = dgates^T x, dW_hh = dgates^T h, db_ih = db_hh = sum
    of dgates over the batch. Differentiable once."""

    saved_inputs, saves_outputs = (0, 1, 2, 3, 4), False

    name = "lstm_cell"
    once_differentiable = True

    def flops(self, inputs, outputs):
        """The two gate products, the biases, 15 pointwise FLOPs per hidden unit."""
        x, h = inputs[0], inputs[1]
        gates = h.shape[0] * 4 * h.shape[1]
        return 2 * gates * (x.shape[1] + h.shape[1]) + 2 * gates * (len(inputs) == 7) + 15 * h.size

    def backward_flops(self, grad_outputs, grad_inputs):
        """20 pointwise FLOPs per hidden unit, then four products (dx, dh, dW_ih, dW_hh) and the bias sum."""
        x, h = self.inputs[0], self.inputs[1]
        gates = h.shape[0] * 4 * h.shape[1]
        return 20 * h.size + 4 * gates * (x.shape[1] + h.shape[1]) + gates

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


class _Recurrence(Function):
    """What the fused sequence kernels share: the direction of the loop over time, and the gradient of W_hh.

    Each subclass keeps the h_t it returns (output 0, ``self.outputs``) for backward: h_{t-1}, the state every
    step multiplied by W_hh, is the output of the step before it (h0 for the first step), so nothing else is
    stored for the products with W_hh.
    """

    once_differentiable = True

    def __init__(self, reverse: bool):
        self.reverse = reverse

    def _steps(self, length: int) -> range:
        """The time steps in the order the recurrence visits them."""
        return range(length - 1, -1, -1) if self.reverse else range(length)

    def _previous(self, position: int, steps: list[int], h0: Any) -> Any:
        """h_{t-1} of the step visited at ``position`` (h0 for the first one)."""
        return h0 if position == 0 else self.outputs[steps[position - 1]]

    def _weight_gradient(self, grad_hidden: Any, h0: Any) -> Tensor:
        """dW_hh = sum_t dpre_t^T h_{t-1}, with ``grad_hidden`` (T, batch, gates * H) the gradients of the products
        h_{t-1} W_hh^T, aligned in time with the outputs. Every h_{t-1} but h0 is an output of the step before, so
        the sum is one matrix product over the T - 1 steps whose h_{t-1} is an output (a contiguous block of the
        outputs, shifted by one step) plus one product with h0: no shifted copy of the outputs is made."""
        outputs, width = self.outputs, grad_hidden.shape[-1]
        first = 0 if not self.reverse else len(outputs) - 1  # the step whose h_{t-1} is h0
        later = slice(1, None) if not self.reverse else slice(None, -1)
        previous = slice(None, -1) if not self.reverse else slice(1, None)
        grad_w_hh = grad_hidden[first].T @ h0
        grad_w_hh += grad_hidden[later].reshape(-1, width).T @ outputs[previous].reshape(-1, outputs.shape[-1])
        return Tensor._from_array(grad_w_hh)


class LSTMSequence(_Recurrence):
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

    def flops(self, inputs, outputs):
        """Per step: h W_hh^T, adding the input gates, 15 pointwise FLOPs per hidden unit."""
        gates, h = inputs[0], inputs[1]
        return 2 * gates.size * h.shape[1] + gates.size + 15 * gates.size // 4

    def backward_flops(self, grad_outputs, grad_inputs):
        """Per step: 21 pointwise FLOPs per hidden unit and dgates W_hh; then dW_hh over all steps."""
        gates, h = self.inputs[0], self.inputs[1]
        return 21 * gates.size // 4 + 4 * gates.size * h.shape[1]

    def forward(self, input_gates, h0, c0, w_hh):
        xp = get_array_module(input_gates)
        record = any(self.needs_input_grad)
        return self._recur(input_gates, xp.empty_like(input_gates) if record else None, h0, c0, w_hh)

    def _recur(self, input_gates, activated, h0, c0, w_hh):
        """The loop over time. ``activated`` (T, batch, 4H) receives every step's activated gates, and may be
        ``input_gates`` itself (step t reads only slot t); with ``activated`` None, nothing is kept for backward
        and one work slot serves every step."""
        xp = get_array_module(input_gates)
        length, batch, hidden = input_gates.shape[0], h0.shape[0], h0.shape[1]
        outputs = xp.empty((length, batch, hidden), dtype=input_gates.dtype)
        record = activated is not None
        if record:  # every step's gates and cell state are kept for backward
            self.outputs = outputs  # the h_t, shared with output 0 (which the caller may drop before backward)
            self.activated = activated
            self.cells = xp.empty((length, batch, hidden), dtype=input_gates.dtype)
            self.tanh_cells = xp.empty((length, batch, hidden), dtype=input_gates.dtype)
        else:  # one slot each, overwritten at every step
            scratch_gates = xp.empty((batch, 4 * hidden), dtype=input_gates.dtype)
            scratch_cells = xp.empty((2, batch, hidden), dtype=input_gates.dtype)
        product = xp.empty((batch, 4 * hidden), dtype=input_gates.dtype)
        h, c = h0, c0
        w_hh_t = xp.ascontiguousarray(w_hh.T)  # one copy; a product with a transposed view is slower per step
        constants = lstm_constants(xp, input_gates.dtype, hidden)
        for t in self._steps(length):
            xp.matmul(h, w_hh_t, out=product)
            gates = xp.add(input_gates[t], product, out=activated[t] if record else scratch_gates)
            cell_slots = (self.cells[t], self.tanh_cells[t]) if record else scratch_cells
            c, _, h = lstm_pointwise(gates, c, *cell_slots, h=outputs[t], constants=constants)
        return outputs, h.copy(), c.copy()

    def backward(self, grad_outputs, grad_h_last, grad_c_last):
        input_gates, h0, c0, w_hh = (t.data for t in self.inputs)
        grad_gates, grad_h, grad_c = self._backprop(get_array_module(input_gates).empty_like(input_gates), h0, c0,
                                                    w_hh, grad_outputs, grad_h_last, grad_c_last)
        grad_w_hh = self._weight_gradient(grad_gates, h0) if self.needs_input_grad[3] else None
        return (Tensor._from_array(grad_gates), Tensor._from_array(grad_h), Tensor._from_array(grad_c),
                grad_w_hh)

    def _backprop(self, grad_gates, h0, c0, w_hh, grad_outputs, grad_h_last, grad_c_last):
        """Backpropagation through time: fills ``grad_gates`` (T, batch, 4H) with every dgates_t and returns it with
        dh0 and dc0."""
        xp = get_array_module(grad_gates)
        steps = list(self._steps(grad_gates.shape[0]))
        grad_h, grad_c = grad_h_last.data, grad_c_last.data
        constants = lstm_constants(xp, grad_gates.dtype, h0.shape[-1])
        for position in range(len(steps) - 1, -1, -1):  # the forward order, walked backwards
            t = steps[position]
            c_prev = c0 if position == 0 else self.cells[steps[position - 1]]
            _, grad_c = lstm_pointwise_backward(self.activated[t], c_prev, self.tanh_cells[t],
                                                grad_h + grad_outputs.data[t], grad_c, grad_gates[t], constants)
            grad_h = grad_gates[t] @ w_hh
        return grad_gates, grad_h, grad_c


class LSTMLayer(LSTMSequence):
    """One LSTM layer in one direction, its input projection included: x (T, batch, I), h0, c0 (batch, H), W_ih
    (4H, I), W_hh (4H, H) and a bias (4H,) (b_ih + b_hh) or nothing.

    Forward: P = x W_ih^T + b for every step at once (one matrix product into a (T, batch, 4H) array), then the
    loop of :class:`LSTMSequence`, which activates the gates in place in P: the layer keeps one (T, batch, 4H)
    array where a projection followed by :func:`lstm_sequence` keeps two. Backward: dgates from the same loop
    into a scratch array (it never leaves the kernel), then dx = dgates W_ih, dW_ih = dgates^T x and db = dgates
    summed over time and batch, each one matrix product over all steps. On a CPU, the two (T, batch, 4H) arrays
    that are no longer allocated afresh at every step are most of the layer's page faults: 13 MB each at the
    char-LSTM's size, about 3,200 pages. Differentiable once.
    """

    name = "lstm_layer"

    def flops(self, inputs, outputs):
        """The input projection (and bias), then the recurrence's."""
        x, h, w_ih = inputs[0], inputs[1], inputs[3]
        gates = x.shape[0] * x.shape[1] * w_ih.shape[0]
        return 2 * gates * x.shape[2] + (len(inputs) == 6) * gates + 2 * gates * h.shape[1] + gates + 15 * gates // 4

    def backward_flops(self, grad_outputs, grad_inputs):
        """The recurrence's backward, then dx, dW_ih (and db) over all steps."""
        x, h, w_ih = self.inputs[0], self.inputs[1], self.inputs[3]
        gates = x.shape[0] * x.shape[1] * w_ih.shape[0]
        return 21 * gates // 4 + 4 * gates * h.shape[1] + 4 * gates * x.shape[2] + (len(self.inputs) == 6) * gates

    def forward(self, x, h0, c0, w_ih, w_hh, bias=None):
        xp = get_array_module(x)
        flat = x.reshape(-1, x.shape[-1])
        projection = xp.matmul(flat, w_ih.T)
        if bias is not None:
            projection += bias
        projection = projection.reshape(x.shape[0], x.shape[1], w_ih.shape[0])
        if self.needs_input_grad[3]:
            self.flat_input = flat
        return self._recur(projection, projection if any(self.needs_input_grad) else None, h0, c0, w_hh)

    def backward(self, grad_outputs, grad_h_last, grad_c_last):
        x, h0, c0, w_ih, w_hh = (t.data for t in self.inputs[:5])
        xp = get_array_module(x)
        buffer = scratch(xp, "lstm_layer.grad_gates", self.activated.shape, self.activated.dtype)
        grad_gates, grad_h, grad_c = self._backprop(buffer, h0, c0, w_hh, grad_outputs, grad_h_last, grad_c_last)
        flat = grad_gates.reshape(-1, grad_gates.shape[-1])
        needs = self.needs_input_grad
        grads = [(flat @ w_ih).reshape(x.shape) if needs[0] else None, grad_h, grad_c,
                 flat.T @ self.flat_input if needs[3] else None]
        grads = [None if g is None else Tensor._from_array(g) for g in grads]
        grads.append(self._weight_gradient(grad_gates, h0) if needs[4] else None)
        if len(self.inputs) == 6:
            grads.append(Tensor._from_array(flat.sum(axis=0)) if needs[5] else None)
        return tuple(grads)


class GRUSequence(_Recurrence):
    """The recurrence of one GRU layer over a whole sequence, fused.

    Input: ``input_gates`` (T, batch, 3H) = x_t W_ih^T + b_ih for every step, h0 (batch, H), W_hh (3H, H) and
    b_hh (3H,) or nothing. b_hh cannot be folded into the input projection: its n block sits inside the reset
    gate's product. Forward, with hidden_t = h_{t-1} W_hh^T + b_hh split into (hr, hz, hn) and input_gates[t] into
    (ir, iz, in):

        r = sigmoid(ir + hr),  z = sigmoid(iz + hz),  n = tanh(in + r * hn),  h_t = n + z * (h_{t-1} - n).

    Backward, given dh (the gradient of output t plus what step t+1 sends back):

        dn_pre = dh (1 - z) (1 - n^2),   dz_pre = dh (h_{t-1} - n) z (1 - z),   dr_pre = dn_pre hn r (1 - r),
        d input_gates[t] = (dr_pre, dz_pre, dn_pre),   d hidden_t = (dr_pre, dz_pre, dn_pre r),
        dh_{t-1} = dh z + d hidden_t W_hh,   dW_hh = sum_t d hidden_t^T h_{t-1},   db_hh = sum_{t, batch} d hidden_t.

    Saved for backward: the activated gates (r, z, n) and hn of every step, and the outputs. Differentiable once.
    """

    name = "gru_sequence"

    def flops(self, inputs, outputs):
        """Per step: h W_hh^T (+ b_hh), then 14 pointwise FLOPs per hidden unit (two sigmoids, the candidate, the
        interpolation)."""
        gates, h = inputs[0], inputs[1]
        return 2 * gates.size * h.shape[1] + (len(inputs) == 4) * gates.size + 14 * gates.size // 3

    def backward_flops(self, grad_outputs, grad_inputs):
        """Per step: 18 pointwise FLOPs per hidden unit and d hidden W_hh; then dW_hh and db_hh over all steps."""
        gates, h = self.inputs[0], self.inputs[1]
        return 18 * gates.size // 3 + 4 * gates.size * h.shape[1] + gates.size

    def forward(self, input_gates, h0, w_hh, b_hh=None):
        xp = get_array_module(input_gates)
        length, batch, hidden = input_gates.shape[0], h0.shape[0], h0.shape[1]
        outputs = xp.empty((length, batch, hidden), dtype=input_gates.dtype)
        record = any(self.needs_input_grad)
        if record:
            self.outputs = outputs
            self.activated = xp.empty(input_gates.shape, dtype=input_gates.dtype)  # r, z, n of every step
            self.hidden_n = xp.empty((length, batch, hidden), dtype=input_gates.dtype)  # hn of every step
        else:
            scratch_gates = xp.empty((batch, 3 * hidden), dtype=input_gates.dtype)
        hidden_gates = xp.empty((batch, 3 * hidden), dtype=input_gates.dtype)
        h = h0
        w_hh_t = xp.ascontiguousarray(w_hh.T)
        for t in self._steps(length):
            xp.matmul(h, w_hh_t, out=hidden_gates)
            if b_hh is not None:
                hidden_gates += b_hh
            activated = self.activated[t] if record else scratch_gates
            h = gru_pointwise(input_gates[t], hidden_gates, h, activated, self.hidden_n[t] if record else None,
                              outputs[t])
        return outputs, h.copy()

    def backward(self, grad_outputs, grad_h_last):
        input_gates, h0, w_hh = (t.data for t in self.inputs[:3])
        xp = get_array_module(input_gates)
        steps = list(self._steps(input_gates.shape[0]))
        grad_inputs = xp.empty_like(input_gates)
        grad_hidden = xp.empty_like(input_gates)
        grad_h = grad_h_last.data
        for position in range(len(steps) - 1, -1, -1):
            t = steps[position]
            grad_h = gru_pointwise_backward(self.activated[t], self.hidden_n[t], self._previous(position, steps, h0),
                                            grad_h + grad_outputs.data[t], grad_inputs[t], grad_hidden[t])
            grad_h += grad_hidden[t] @ w_hh
        needs = self.needs_input_grad
        grads = [Tensor._from_array(grad_inputs), Tensor._from_array(grad_h),
                 self._weight_gradient(grad_hidden, h0) if needs[2] else None]
        if len(self.inputs) == 4:
            grads.append(Tensor._from_array(grad_hidden.sum(axis=(0, 1))) if needs[3] else None)
        return tuple(grads)


class RNNSequence(_Recurrence):
    """The recurrence of one Elman layer over a whole sequence, fused.

    Input: ``input_gates`` (T, batch, H) = x_t W_ih^T + b_ih + b_hh for every step, h0 (batch, H), W_hh (H, H).
    Forward: h_t = act(input_gates[t] + h_{t-1} W_hh^T), act = tanh or relu, computed in place in the output.
    Backward: da_t = dh_t act'(h_t), with act' = 1 - h_t^2 (tanh) or [h_t > 0] (relu), both read off the output;
    dh_{t-1} = da_t W_hh; d input_gates[t] = da_t; dW_hh = sum_t da_t^T h_{t-1}. Only the outputs are saved.
    Differentiable once.
    """

    name = "rnn_sequence"

    def flops(self, inputs, outputs):
        """Per step: h W_hh^T, adding the input projection, the nonlinearity."""
        pre, h = inputs[0], inputs[1]
        return 2 * pre.size * h.shape[1] + 2 * pre.size

    def backward_flops(self, grad_outputs, grad_inputs):
        """Per step: the derivative of the nonlinearity and its product (4 per unit), da W_hh; then dW_hh."""
        pre, h = self.inputs[0], self.inputs[1]
        return 4 * pre.size + 4 * pre.size * h.shape[1]

    def __init__(self, nonlinearity: str, reverse: bool):
        super().__init__(reverse)
        self.nonlinearity = nonlinearity

    def forward(self, input_gates, h0, w_hh):
        xp = get_array_module(input_gates)
        outputs = xp.empty(input_gates.shape, dtype=input_gates.dtype)
        if any(self.needs_input_grad):
            self.outputs = outputs
        h = h0
        w_hh_t = xp.ascontiguousarray(w_hh.T)
        for t in self._steps(input_gates.shape[0]):
            h = xp.matmul(h, w_hh_t, out=outputs[t])
            h += input_gates[t]
            if self.nonlinearity == "tanh":
                xp.tanh(h, out=h)
            else:
                xp.maximum(h, 0, out=h)
        return outputs, h.copy()

    def backward(self, grad_outputs, grad_h_last):
        input_gates, h0, w_hh = (t.data for t in self.inputs)
        xp = get_array_module(input_gates)
        steps = list(self._steps(input_gates.shape[0]))
        grad_pre = xp.empty_like(input_gates)
        grad_h = grad_h_last.data
        for position in range(len(steps) - 1, -1, -1):
            t = steps[position]
            h_t = self.outputs[t]
            derivative = 1 - h_t * h_t if self.nonlinearity == "tanh" else h_t > 0
            xp.multiply(grad_h + grad_outputs.data[t], derivative, out=grad_pre[t])
            grad_h = grad_pre[t] @ w_hh
        grad_w_hh = self._weight_gradient(grad_pre, h0) if self.needs_input_grad[2] else None
        return Tensor._from_array(grad_pre), Tensor._from_array(grad_h), grad_w_hh


# -------------------------------------------------------------------------------------------- validation
def _shape(t: Any) -> tuple | None:
    return None if t is None else tuple(t.shape)


def _tensors(op: str, *values: Any) -> list[Any]:
    """The arguments of a recurrent op as Tensors of one floating dtype (:func:`operands`: arrays wrapped, a float32
    and a float64 argument a TypeError naming ``op``); a None (an absent bias) stays None."""
    converted = iter(operands(op, *(v for v in values if v is not None)))
    return [None if v is None else next(converted) for v in values]


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


class GRUGates(Function):
    """The elementwise part of a GRU step: h' = n + z (h - n) from the input projections a, the hidden
    projections b and h (see the module docstring). Forward and plain backward on raw arrays in
    :mod:`tinydl.kernels.recurrent` (one CUDA kernel each on a GPU); a backward being differentiated recomputes the
    gates with tinydl ops, so the GRU stays twice differentiable."""

    name = "gru_gates"

    def flops(self, inputs, outputs):
        """14 per hidden unit: two sigmoids of sums (4 each), the candidate (3), the interpolation (3)."""
        return 14 * inputs[2].size

    def backward_flops(self, grad_outputs, grad_inputs):
        """18 per hidden unit on raw arrays; a recorded backward is made of ops that count themselves."""
        return 0 if is_grad_enabled() else 18 * self.inputs[2].size

    def forward(self, input_gates, hidden_gates, hx):
        return gru_gates(input_gates, hidden_gates, hx)

    def backward(self, grad):
        a, b, h = self.inputs
        if not is_grad_enabled():
            return tuple(Tensor._from_array(g) for g in gru_gates_backward(a.data, b.data, h.data, grad.data))
        input_r, input_z, input_n = chunk(a, 3, -1)
        hidden_r, hidden_z, hidden_n = chunk(b, 3, -1)
        reset = sigmoid(input_r + hidden_r)
        update = sigmoid(input_z + hidden_z)
        candidate = tanh(input_n + reset * hidden_n)
        grad_n = grad * (1 - update) * (1 - candidate * candidate)
        grad_z = grad * (h - candidate) * update * (1 - update)
        grad_r = grad_n * hidden_n * reset * (1 - reset)
        return cat([grad_r, grad_z, grad_n], -1), cat([grad_r, grad_z, grad_n * reset], -1), grad * update


def gru_step(input_gates: Tensor, hx: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    """One GRU step given the input projection ``input_gates`` = x W_ih^T + b_ih, gates (r, z, n)."""
    return GRUGates()(input_gates, linear(hx, w_hh, b_hh), hx)


def _elman_cell(op: str, nonlinearity: str, input: Tensor, hx: Tensor, w_ih: Tensor, w_hh: Tensor,
                b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor:
    input, hx, w_ih, w_hh, b_ih, b_hh = _tensors(op, input, hx, w_ih, w_hh, b_ih, b_hh)
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
    input, hx, w_ih, w_hh, b_ih, b_hh = _tensors("gru_cell", input, hx, w_ih, w_hh, b_ih, b_hh)
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
    input, h, c, w_ih, w_hh, b_ih, b_hh = _tensors("lstm_cell", input, *hx, w_ih, w_hh, b_ih, b_hh)
    check_cell_arguments("lstm_cell", input, (h, c), w_ih, w_hh, b_ih, b_hh, gates=4)
    unbatched, (input, h, c) = _batched(input, h, c)
    biases = () if b_ih is None else (b_ih, b_hh)
    h, c = LSTMCell()(input, h, c, w_ih, w_hh, *biases)
    return (h.squeeze(0), c.squeeze(0)) if unbatched else (h, c)


def _check_sequence_arguments(op: str, gate_shape: tuple[int, ...], states: dict[str, Tensor], w_hh: Tensor,
                              gates: int, bias: Tensor | None = None, bias_name: str = "b_hh",
                              gates_name: str = "input_gates") -> None:
    """Raise a ValueError naming ``op`` and the expected and found shapes when the arguments of a fused sequence
    kernel do not fit together: the input gates of shape ``gate_shape``, (T, batch, gates * H) with T >= 1, states
    (batch, H), W_hh (gates * H, H), the bias (gates * H,). ``gates_name`` names the input gates in the message."""
    if w_hh.ndim != 2 or w_hh.shape[0] != gates * w_hh.shape[1]:
        size = f"{gates} * hidden_size" if gates > 1 else "hidden_size"
        raise ValueError(f"{op}: expected w_hh of shape ({size}, hidden_size), found {_shape(w_hh)}")
    hidden = w_hh.shape[1]
    if len(gate_shape) != 3 or gate_shape[-1] != gates * hidden or gate_shape[0] == 0:
        raise ValueError(f"{op}: expected {gates_name} of shape (seq_len, batch, {gates * hidden}), found "
                         f"{gate_shape}")
    expected_state = (gate_shape[1], hidden)
    for name, state in states.items():
        if tuple(state.shape) != expected_state:
            raise ValueError(f"{op}: expected {name} of shape {expected_state}, found {_shape(state)}")
    if bias is not None and tuple(bias.shape) != (gates * hidden,):
        raise ValueError(f"{op}: expected {bias_name} of shape ({gates * hidden},), found {_shape(bias)}")


def lstm_sequence(input_gates: Tensor, hx: tuple[Tensor, Tensor], w_hh: Tensor, reverse: bool = False
                  ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """The recurrence of one LSTM layer: ``input_gates`` (T, batch, 4H) are the input projections
    x_t W_ih^T + b_ih + b_hh of every step, ``hx`` = (h0, c0) of shape (batch, H). Returns (output (T, batch, H),
    (h_n, c_n)) like one direction of ``torch.nn.LSTM``; ``reverse`` runs from the last step to the first."""
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise TypeError(f"lstm_sequence: hx must be a pair (h0, c0) of tensors, found {type(hx).__name__}")
    input_gates, h0, c0, w_hh = _tensors("lstm_sequence", input_gates, *hx, w_hh)
    _check_sequence_arguments("lstm_sequence", tuple(input_gates.shape), {"h0": h0, "c0": c0}, w_hh, gates=4)
    output, h, c = LSTMSequence(reverse)(input_gates, h0, c0, w_hh)
    return output, (h, c)


def lstm_layer(input: Tensor, hx: tuple[Tensor, Tensor], w_ih: Tensor, w_hh: Tensor, bias: Tensor | None = None,
               reverse: bool = False) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One LSTM layer in one direction, its input projection included: ``input`` (T, batch, I), ``hx`` = (h0, c0)
    of shape (batch, H), ``w_ih`` (4H, I), ``w_hh`` (4H, H), ``bias`` (4H,) the sum b_ih + b_hh. The same maths as
    :func:`lstm_sequence` on ``linear(input, w_ih, bias)``, as one fused op that keeps one (T, batch, 4H) array
    instead of two (:class:`LSTMLayer`). Returns (output (T, batch, H), (h_n, c_n))."""
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise TypeError(f"lstm_layer: hx must be a pair (h0, c0) of tensors, found {type(hx).__name__}")
    input, h0, c0, w_ih, w_hh, bias = _tensors("lstm_layer", input, *hx, w_ih, w_hh, bias)
    if w_ih.ndim != 2 or input.ndim != 3 or input.shape[-1] != w_ih.shape[1] or input.shape[0] == 0:
        raise ValueError(f"lstm_layer: input of shape {_shape(input)} does not fit w_ih of shape {_shape(w_ih)} "
                         f"(expected input (seq_len >= 1, batch, input_size) and w_ih (4 * hidden_size, "
                         f"input_size))")
    _check_sequence_arguments("lstm_layer", (input.shape[0], input.shape[1], w_ih.shape[0]), {"h0": h0, "c0": c0},
                              w_hh, gates=4, bias=bias, bias_name="bias", gates_name="projection x W_ih^T")
    output, h, c = LSTMLayer(reverse)(input, h0, c0, w_ih, w_hh, *(() if bias is None else (bias,)))
    return output, (h, c)


def gru_sequence(input_gates: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None = None, reverse: bool = False
                 ) -> tuple[Tensor, Tensor]:
    """The recurrence of one GRU layer: ``input_gates`` (T, batch, 3H) are the input projections x_t W_ih^T + b_ih
    of every step (gates r, z, n), ``h0`` (batch, H), ``b_hh`` (3H,) the hidden bias (kept apart: its n block is
    multiplied by the reset gate). Returns (output (T, batch, H), h_n) like one direction of ``torch.nn.GRU``.
    One fused op, differentiable once."""
    input_gates, h0, w_hh, b_hh = _tensors("gru_sequence", input_gates, h0, w_hh, b_hh)
    _check_sequence_arguments("gru_sequence", tuple(input_gates.shape), {"h0": h0}, w_hh, gates=3, bias=b_hh)
    biases = () if b_hh is None else (b_hh,)
    output, h = GRUSequence(reverse)(input_gates, h0, w_hh, *biases)
    return output, h


def rnn_sequence(input_gates: Tensor, h0: Tensor, w_hh: Tensor, nonlinearity: str = "tanh",
                 reverse: bool = False) -> tuple[Tensor, Tensor]:
    """The recurrence of one Elman layer: ``input_gates`` (T, batch, H) are x_t W_ih^T + b_ih + b_hh of every
    step, ``h0`` (batch, H); h_t = act(input_gates[t] + h_{t-1} W_hh^T) with act = ``nonlinearity`` ("tanh" or
    "relu"). Returns (output (T, batch, H), h_n) like one direction of ``torch.nn.RNN``. One fused op,
    differentiable once."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn_sequence: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    input_gates, h0, w_hh = _tensors("rnn_sequence", input_gates, h0, w_hh)
    _check_sequence_arguments("rnn_sequence", tuple(input_gates.shape), {"h0": h0}, w_hh, gates=1)
    output, h = RNNSequence(nonlinearity, reverse)(input_gates, h0, w_hh)
    return output, h
