"""Recurrent layers: the cells ``RNNCell``, ``LSTMCell``, ``GRUCell`` (one time step) and the sequence layers
``RNN``, ``LSTM``, ``GRU`` (stacked, optionally bidirectional), with PyTorch's parameter names, shapes, gate
orders and default initialisation, U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) for every parameter.

A sequence layer runs layer by layer and, within a layer, direction by direction. For each, the input
projection of every time step, x_t W_ih^T + b_ih, is one matrix product over the whole sequence, before the
loop over time; the loop then only adds h_{t-1} W_hh^T. Each loop is one fused op
(:func:`tinydl.functional.lstm_sequence`, :func:`~tinydl.functional.gru_sequence`,
:func:`~tinydl.functional.rnn_sequence`), differentiable once. The Elman and GRU layers keep the plain path
beside it: with ``layer.fused = False`` their loop is written step by step with differentiable ops (slower, but
twice differentiable, and the reference the fused kernels are tested against).
"""
from __future__ import annotations

import math
from typing import Any

from .. import functional as F
from ..creation import empty, zeros
from ..functional.recurrent import gru_step, rnn_step
from ..tensor import Tensor
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU"]

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _check_sizes(owner: str, **sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")


def _uniform_init(module: Module, hidden_size: int) -> None:
    """PyTorch's default for recurrent layers: every parameter ~ U(-1/sqrt(hidden), 1/sqrt(hidden))."""
    bound = 1.0 / math.sqrt(hidden_size)
    for parameter in module.parameters():
        init.uniform_(parameter, -bound, bound)


# ------------------------------------------------------------------------------------------------------ cells
class _CellBase(Module):
    """weight_ih (gates * hidden, input), weight_hh (gates * hidden, hidden), bias_ih, bias_hh (gates * hidden)."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = "cpu",
                 dtype: Any = None):
        super().__init__()
        _check_sizes(type(self).__name__, input_size=input_size, hidden_size=hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        rows = self.gates * hidden_size
        self.weight_ih = Parameter(empty(rows, input_size, device=device, dtype=dtype))
        self.weight_hh = Parameter(empty(rows, hidden_size, device=device, dtype=dtype))
        self.bias_ih = Parameter(empty(rows, device=device, dtype=dtype)) if bias else None
        self.bias_hh = Parameter(empty(rows, device=device, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_init(self, self.hidden_size)

    def _zero_state(self, input: Tensor) -> Tensor:
        return zeros(input.shape[:-1] + (self.hidden_size,), dtype=input.dtype, device=input.device)

    def _weights(self) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_CellBase):
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act = tanh (default) or relu; ``hx`` defaults to zeros."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device: Any = "cpu", dtype: Any = None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        cell = F.rnn_tanh_cell if self.nonlinearity == "tanh" else F.rnn_relu_cell
        return cell(input, self._zero_state(input) if hx is None else hx, *self._weights())


class LSTMCell(_CellBase):
    """One LSTM step, gates (i, f, g, o): returns (h', c'); ``hx`` = (h, c) defaults to zeros."""

    gates = 4

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        if hx is None:
            hx = (self._zero_state(input), self._zero_state(input))
        return F.lstm_cell(input, hx, *self._weights())


class GRUCell(_CellBase):
    """One GRU step, gates (r, z, n); ``hx`` defaults to zeros."""

    gates = 3

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return F.gru_cell(input, self._zero_state(input) if hx is None else hx, *self._weights())


# -------------------------------------------------------------------------------------------- sequence layers
class RNNBase(Module):
    """A stack of ``num_layers`` recurrent layers over a sequence, as ``torch.nn.RNN/LSTM/GRU``.

    Input (seq_len, batch, input_size), or (batch, seq_len, input_size) with ``batch_first``, or unbatched
    (seq_len, input_size). Returns ``(output, h_n)`` (``(output, (h_n, c_n))`` for the LSTM): output holds the
    last layer's hidden state at every step, (seq_len, batch, directions * hidden_size); h_n (and c_n) the final
    state of every layer and direction, (num_layers * directions, batch, hidden_size), layer-major. With
    ``dropout`` > 0, dropout is applied to every layer's output but the last, in training mode.

    ``fused`` (an attribute, True by default) runs each layer and direction as one fused sequence kernel; the
    Elman and GRU layers run the composed step-by-step path when it is set to False.
    """

    fused = True

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device: Any = "cpu",
                 dtype: Any = None):
        super().__init__()
        owner = type(self).__name__
        _check_sizes(owner, input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{owner}: dropout must be a probability in [0, 1], got {dropout}")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, dropout, bidirectional
        self.num_directions = 2 if bidirectional else 1
        rows = GATES[mode] * hidden_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for suffix in self._suffixes():
                setattr(self, f"weight_ih_l{layer}{suffix}", Parameter(empty(rows, layer_input, device=device,
                                                                             dtype=dtype)))
                setattr(self, f"weight_hh_l{layer}{suffix}", Parameter(empty(rows, hidden_size, device=device,
                                                                             dtype=dtype)))
                if bias:
                    setattr(self, f"bias_ih_l{layer}{suffix}", Parameter(empty(rows, device=device, dtype=dtype)))
                    setattr(self, f"bias_hh_l{layer}{suffix}", Parameter(empty(rows, device=device, dtype=dtype)))
        self.reset_parameters()

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def reset_parameters(self) -> None:
        _uniform_init(self, self.hidden_size)

    def _layer_weights(self, layer: int, suffix: str) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        names = (f"weight_ih_l{layer}{suffix}", f"weight_hh_l{layer}{suffix}", f"bias_ih_l{layer}{suffix}",
                 f"bias_hh_l{layer}{suffix}")
        return tuple(getattr(self, name) if self.bias or name.startswith("weight") else None  # type: ignore
                     for name in names)

    # ------------------------------------------------------------------------------------------- shapes
    def _check_input(self, input: Tensor) -> None:
        owner = type(self).__name__
        layout = "(batch, seq_len, input_size)" if self.batch_first else "(seq_len, batch, input_size)"
        if input.ndim not in (2, 3):
            raise ValueError(f"{owner}: expected a 3-D input {layout} or a 2-D unbatched input (seq_len, "
                             f"input_size), found a {input.ndim}-D input of shape {tuple(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{owner}: expected input with feature size input_size={self.input_size}, found "
                             f"{input.shape[-1]} (input of shape {tuple(input.shape)})")
        time_axis = 1 if self.batch_first and input.ndim == 3 else 0
        if input.shape[time_axis] == 0:
            raise ValueError(f"{owner}: expected a non-empty sequence, found input of shape {tuple(input.shape)}")

    def _initial_state(self, state: Tensor | None, batch: int | None, input: Tensor, name: str) -> Tensor:
        """The state (num_layers * directions, batch, hidden), zeros when not given; shapes checked."""
        expected = (self.num_layers * self.num_directions,) + (() if batch is None else (batch,)) + \
            (self.hidden_size,)
        if state is None:
            state = zeros(expected, dtype=input.dtype, device=input.device)
        elif tuple(state.shape) != expected:
            raise ValueError(f"{type(self).__name__}: expected {name} of shape {expected}, found "
                             f"{tuple(state.shape)}")
        return state if batch is not None else state.unsqueeze(1)

    # ------------------------------------------------------------------------------------------ forward
    def _run_direction(self, input: Tensor, state: tuple[Tensor, ...], weights: tuple, reverse: bool
                       ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One layer in one direction over input (seq_len, batch, features): (outputs, final state)."""
        raise NotImplementedError  # pragma: no cover - each layer type defines its recurrence

    def _forward(self, input: Tensor, states: list[Tensor | None], names: tuple[str, ...]) -> tuple[Tensor, list]:
        self._check_input(input)
        unbatched = input.ndim == 2
        if unbatched:
            input = input.unsqueeze(1)
        elif self.batch_first:
            input = input.transpose(0, 1)
        batch = None if unbatched else input.shape[1]
        states = [self._initial_state(s, batch, input, name) for s, name in zip(states, names)]
        finals: list[list[Tensor]] = [[] for _ in states]
        layer_input = input
        for layer in range(self.num_layers):
            outputs = []
            for direction, suffix in enumerate(self._suffixes()):
                index = layer * self.num_directions + direction
                output, final = self._run_direction(layer_input, tuple(s[index] for s in states),
                                                    self._layer_weights(layer, suffix), reverse=direction == 1)
                outputs.append(output)
                for collected, value in zip(finals, final):
                    collected.append(value)
            layer_input = outputs[0] if len(outputs) == 1 else F.cat(outputs, -1)
            if layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=self.training)
        output = layer_input
        finals = [F.stack(collected, 0) for collected in finals]
        if unbatched:
            return output.squeeze(1), [f.squeeze(1) for f in finals]
        return (output.transpose(0, 1) if self.batch_first else output), finals

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)}"
        return text


def _time_steps(projection: Tensor) -> list[Tensor]:
    """The (batch, features) slices of a (seq_len, batch, features) tensor, by one split op (whose backward is
    one concatenation, where indexing step by step would scatter into a full-size zero array per step)."""
    return [step.squeeze(0) for step in F.split(projection, 1, 0)]


def _project(input: Tensor, w_ih: Tensor, bias: Tensor | None) -> Tensor:
    """x_t W_ih^T + bias for every step at once: one (seq_len * batch, in) x (in, gates * hidden) product."""
    length, batch = input.shape[0], input.shape[1]
    return F.linear(input.reshape(length * batch, input.shape[2]), w_ih, bias).reshape(length, batch, w_ih.shape[0])


class RNN(RNNBase):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act = tanh or relu (``nonlinearity``)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = "cpu", dtype: Any = None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(f"RNN_{nonlinearity.upper()}", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device, dtype)

    def _run_direction(self, input, state, weights, reverse):
        w_ih, w_hh, b_ih, b_hh = weights
        projection = _project(input, w_ih, None if b_ih is None else b_ih + b_hh)  # both biases folded in
        if self.fused:
            output, h = F.rnn_sequence(projection, state[0], w_hh, self.nonlinearity, reverse=reverse)
            return output, (h,)
        steps = _time_steps(projection)
        h, outputs = state[0], [None] * len(steps)
        for t in (reversed(range(len(steps))) if reverse else range(len(steps))):
            h = outputs[t] = rnn_step(steps[t], h, w_hh, None, self.nonlinearity)
        return F.stack(outputs, 0), (h,)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        output, (h_n,) = self._forward(input, [hx], ("hx",))
        return output, h_n

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.nonlinearity == "tanh" else ", nonlinearity='relu'")


class GRU(RNNBase):
    """GRU, gates (r, z, n): n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn)),
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device: Any = "cpu",
                 dtype: Any = None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device, dtype)

    def _run_direction(self, input, state, weights, reverse):
        w_ih, w_hh, b_ih, b_hh = weights
        projection = _project(input, w_ih, b_ih)
        if self.fused:
            output, h = F.gru_sequence(projection, state[0], w_hh, b_hh, reverse=reverse)
            return output, (h,)
        steps = _time_steps(projection)
        h, outputs = state[0], [None] * len(steps)
        for t in (reversed(range(len(steps))) if reverse else range(len(steps))):
            h = outputs[t] = gru_step(steps[t], h, w_hh, b_hh)
        return F.stack(outputs, 0), (h,)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        output, (h_n,) = self._forward(input, [hx], ("hx",))
        return output, h_n


class LSTM(RNNBase):
    """LSTM, gates (i, f, g, o); each layer and direction is one fused op, its input projection included
    (:func:`tinydl.functional.lstm_layer`). ``hx`` = (h_0, c_0)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device: Any = "cpu",
                 dtype: Any = None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device, dtype)

    def _run_direction(self, input, state, weights, reverse):
        w_ih, w_hh, b_ih, b_hh = weights
        output, (h, c) = F.lstm_layer(input, state, w_ih, w_hh, None if b_ih is None else b_ih + b_hh,
                                      reverse=reverse)  # both biases folded in
        return output, (h, c)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTM: hx must be a pair (h_0, c_0) of tensors, found {type(hx).__name__}")
        output, (h_n, c_n) = self._forward(input, list(hx) if hx is not None else [None, None], ("h_0", "c_0"))
        return output, (h_n, c_n)
