"""The Transformer's building blocks, as in PyTorch: ``TransformerEncoderLayer``, ``TransformerDecoderLayer``,
``TransformerEncoder`` (a stack of copies of one layer), and two ways of telling a Transformer where each token
sits: ``SinusoidalPositionalEncoding`` (fixed) and ``LearnedPositionalEncoding`` (trained).

An encoder layer is self-attention then a position-wise feed-forward network, each wrapped in a residual
connection and a layer normalisation, either after the residual sum (post-norm, the original Transformer):

    x = norm1(x + dropout(self_attention(x)));   x = norm2(x + dropout(ffn(x)))

or before the sublayer (``norm_first``, pre-norm, easier to train deep):

    x = x + dropout(self_attention(norm1(x)));   x = x + dropout(ffn(norm2(x)))

with ffn(x) = linear2(dropout(activation(linear1(x)))). A decoder layer adds, between the two, attention from
the target sequence to the encoder's output (the memory).
"""
from __future__ import annotations

import copy
import math
from typing import Any, Callable

from .. import functional as F
from ..backend import array_module_for
from ..creation import empty
from ..tensor import Tensor
from . import init
from .attention import MultiheadAttention
from .containers import ModuleList
from .dropout import Dropout
from .linear import Linear
from .module import Module
from .normalization import LayerNorm
from .parameter import Parameter

__all__ = ["TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder",
           "SinusoidalPositionalEncoding", "LearnedPositionalEncoding"]

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}


def _activation(owner: str, activation: str | Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    if callable(activation):
        return activation
    if activation not in ACTIVATIONS:
        raise ValueError(f"{owner}: activation must be 'relu', 'gelu' or a callable, got {activation!r}")
    return ACTIVATIONS[activation]


class _FeedForwardLayer(Module):
    """What encoder and decoder layers share: the feed-forward block and the pre-/post-norm residual wiring.
    Subclasses create their attention modules first and then call ``_build`` (PyTorch's registration order,
    hence its state-dict order)."""

    def _build(self, d_model: int, dim_feedforward: int, dropout: float, activation: Any, layer_norm_eps: float,
               norm_first: bool, bias: bool, norms: int, device: Any, dtype: Any) -> None:
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, device=device, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, device=device, dtype=dtype)
        self.norm_first = norm_first
        for k in range(1, norms + 1):
            setattr(self, f"norm{k}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype))
        for k in range(1, norms + 1):
            setattr(self, f"dropout{k}", Dropout(dropout))
        self.activation = _activation(type(self).__name__, activation)

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))

    def _residual(self, x: Tensor, norm: LayerNorm, dropout: Dropout, sublayer: Callable[[Tensor], Tensor]
                  ) -> Tensor:
        """x + dropout(sublayer(norm(x))) with norm_first, else norm(x + dropout(sublayer(x)))."""
        if self.norm_first:
            return x + dropout(sublayer(norm(x)))
        return norm(x + dropout(sublayer(x)))


class TransformerEncoderLayer(_FeedForwardLayer):
    """Self-attention and feed-forward, as ``torch.nn.TransformerEncoderLayer`` (same submodule names:
    self_attn, linear1, dropout, linear2, norm1, norm2, dropout1, dropout2).

    ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)``; masks as in
    :class:`MultiheadAttention`.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable[[Tensor], Tensor] = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True, device: Any = "cpu",
                 dtype: Any = None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            device=device, dtype=dtype)
        self._build(d_model, dim_feedforward, dropout, activation, layer_norm_eps, norm_first, bias, 2, device, dtype)

    def forward(self, src: Tensor, src_mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
                is_causal: bool = False) -> Tensor:
        def self_attention(x: Tensor) -> Tensor:
            return self.self_attn(x, x, x, key_padding_mask=src_key_padding_mask, need_weights=False,
                                  attn_mask=src_mask, is_causal=is_causal)[0]
        x = self._residual(src, self.norm1, self.dropout1, self_attention)
        return self._residual(x, self.norm2, self.dropout2, self._ff_block)


class TransformerDecoderLayer(_FeedForwardLayer):
    """Self-attention on the target, attention from the target to the memory, feed-forward, as
    ``torch.nn.TransformerDecoderLayer`` (self_attn, multihead_attn, linear1, dropout, linear2, norm1..3,
    dropout1..3).

    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False)``.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable[[Tensor], Tensor] = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True, device: Any = "cpu",
                 dtype: Any = None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            device=device, dtype=dtype)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first, device=device, dtype=dtype)
        self._build(d_model, dim_feedforward, dropout, activation, layer_norm_eps, norm_first, bias, 3, device, dtype)

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask: Tensor | None = None, memory_mask: Tensor | None = None,
                tgt_key_padding_mask: Tensor | None = None, memory_key_padding_mask: Tensor | None = None,
                tgt_is_causal: bool = False, memory_is_causal: bool = False) -> Tensor:
        def self_attention(x: Tensor) -> Tensor:
            return self.self_attn(x, x, x, key_padding_mask=tgt_key_padding_mask, need_weights=False,
                                  attn_mask=tgt_mask, is_causal=tgt_is_causal)[0]

        def memory_attention(x: Tensor) -> Tensor:
            return self.multihead_attn(x, memory, memory, key_padding_mask=memory_key_padding_mask,
                                       need_weights=False, attn_mask=memory_mask, is_causal=memory_is_causal)[0]
        x = self._residual(tgt, self.norm1, self.dropout1, self_attention)
        x = self._residual(x, self.norm2, self.dropout2, memory_attention)
        return self._residual(x, self.norm3, self.dropout3, self._ff_block)


class TransformerEncoder(Module):
    """``num_layers`` independent copies of ``encoder_layer`` (``layers.0``, ``layers.1``, ...) applied in turn,
    then ``norm`` if given; ``forward(src, mask=None, src_key_padding_mask=None, is_causal=False)``."""

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm: Module | None = None):
        super().__init__()
        if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers <= 0:
            raise ValueError(f"TransformerEncoder: num_layers must be a positive int, got {num_layers!r}")
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src: Tensor, mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
                is_causal: bool = False) -> Tensor:
        output = src
        for layer in self.layers:
            output = layer(output, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)
        return output if self.norm is None else self.norm(output)


# -------------------------------------------------------------------------------------- positional encodings
def _position_axis(batch_first: bool, input: Tensor, owner: str, max_len: int) -> int:
    """The sequence axis of ``input`` (seq, batch, d), (batch, seq, d) or (seq, d), checked against max_len."""
    if input.ndim not in (2, 3):
        raise ValueError(f"{owner}: expected an input of shape (seq_len, batch, d_model), (batch, seq_len, d_model) "
                         f"with batch_first, or (seq_len, d_model); found {tuple(input.shape)}")
    axis = 1 if batch_first and input.ndim == 3 else 0
    if input.shape[axis] > max_len:
        raise ValueError(f"{owner}: the sequence length {input.shape[axis]} exceeds max_len={max_len} (input of "
                         f"shape {tuple(input.shape)})")
    return axis


def _add_positions(input: Tensor, table: Tensor, axis: int) -> Tensor:
    """input + table[position] for every position along ``axis`` (broadcast over the batch)."""
    positions = table[:input.shape[axis]]
    return input + (positions.unsqueeze(1) if axis == 0 and input.ndim == 3 else positions)


class SinusoidalPositionalEncoding(Module):
    """x + PE[position], PE[p, 2i] = sin(p / 10000^(2i / d)), PE[p, 2i + 1] = cos(p / 10000^(2i / d))
    (Vaswani et al., 2017): fixed, no parameters (the table is a non-persistent buffer), then dropout.

    Every dimension pair is a rotation at its own frequency, so PE[p + k] is a linear function of PE[p]:
    attention can pick out relative offsets.
    """

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0, batch_first: bool = False,
                 device: Any = "cpu", dtype: Any = None):
        super().__init__()
        for name, value in (("d_model", d_model), ("max_len", max_len)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"SinusoidalPositionalEncoding: {name} must be a positive int, got {value!r}")
        self.d_model, self.max_len, self.batch_first = d_model, max_len, batch_first
        self.dropout = Dropout(dropout)
        xp = array_module_for(device)
        positions = xp.arange(max_len, dtype=xp.float64)[:, None]
        frequencies = xp.exp(xp.arange(0, d_model, 2, dtype=xp.float64) * (-math.log(10000.0) / d_model))
        table = xp.zeros((max_len, d_model), dtype=xp.float64)
        table[:, 0::2] = xp.sin(positions * frequencies)
        table[:, 1::2] = xp.cos(positions * frequencies[:d_model // 2])
        self.register_buffer("pe", Tensor(table.astype(dtype or xp.float32)), persistent=False)

    def forward(self, input: Tensor) -> Tensor:
        axis = _position_axis(self.batch_first, input, type(self).__name__, self.max_len)
        return self.dropout(_add_positions(input, self.pe, axis))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, batch_first={self.batch_first}"


class LearnedPositionalEncoding(Module):
    """x + weight[position] with ``weight`` (max_len, d_model) a trained table (GPT/BERT style), initialised
    N(0, 0.02^2), then dropout. The sizes come in ``nn.Embedding``'s order: a table of max_len rows."""

    def __init__(self, max_len: int, d_model: int, dropout: float = 0.0, batch_first: bool = False,
                 device: Any = "cpu", dtype: Any = None):
        super().__init__()
        for name, value in (("max_len", max_len), ("d_model", d_model)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"LearnedPositionalEncoding: {name} must be a positive int, got {value!r}")
        self.max_len, self.d_model, self.batch_first = max_len, d_model, batch_first
        self.dropout = Dropout(dropout)
        self.weight = Parameter(empty(max_len, d_model, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight, 0.0, 0.02)

    def forward(self, input: Tensor) -> Tensor:
        axis = _position_axis(self.batch_first, input, type(self).__name__, self.max_len)
        return self.dropout(_add_positions(input, self.weight, axis))

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}, batch_first={self.batch_first}"
