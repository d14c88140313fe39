"""``MultiheadAttention``: h attention heads over learned projections of the queries, keys and values.

For model width E and h heads of width d = E / h:

    [Q K V] = [query W_q^T + b_q, key W_k^T + b_k, value W_v^T + b_v]   (W_q, W_k, W_v stacked in in_proj_weight)
    each of Q, K, V (batch, length, E) -> (batch, h, length, d)        (split the features into heads)
    O_head = softmax(Q_head K_head^T / sqrt(d) + mask) V_head           (all heads in one batched product)
    output = concat_heads(O) W_o^T + b_o                                (out_proj)

When query, key and value are the same tensor (self-attention) the three projections are one matrix product.
"""
from __future__ import annotations

from typing import Any

from .. import functional as F
from ..backend import get_array_module
from ..creation import empty
from ..functional.attention import causal_mask
from ..functional.elementwise import constant
from ..tensor import Tensor
from . import init
from .linear import Linear
from .module import Module
from .parameter import Parameter

__all__ = ["MultiheadAttention"]


class MultiheadAttention(Module):
    """Multi-head attention as ``torch.nn.MultiheadAttention``: parameters ``in_proj_weight`` (3E, E),
    ``in_proj_bias`` (3E,) and ``out_proj`` (a Linear E -> E), same names, shapes and initialisation.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` takes (L, N, E) inputs ((N, L, E) with ``batch_first``, or
    unbatched (L, E)) and returns ``(output, weights)``: weights (N, L, S) averaged over heads, (N, h, L, S) with
    ``average_attn_weights=False``, or None when ``need_weights=False``.

    Masks follow PyTorch's convention for this module: a boolean ``key_padding_mask`` (N, S) or ``attn_mask``
    (L, S) or (N * h, L, S) is True where attention is *not* allowed; float masks are added to the scores.
    ``is_causal=True`` without an ``attn_mask`` applies the causal mask (with one, it is only a hint, as in
    PyTorch). A query whose keys are all masked gets a zero output (PyTorch gives NaN).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False, device: Any = "cpu", dtype: Any = None):
        super().__init__()
        for name, value in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"MultiheadAttention: {name} must be a positive int, got {value!r}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MultiheadAttention: dropout must lie in [0, 1), got {dropout}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.dropout, self.batch_first = dropout, batch_first
        self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, device=device, dtype=dtype))
        self.in_proj_bias = Parameter(empty(3 * embed_dim, device=device, dtype=dtype)) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's: xavier_uniform_ on in_proj_weight, zero biases (out_proj.weight keeps Linear's init)."""
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    # ------------------------------------------------------------------------------------------- shapes
    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor) -> None:
        layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
        for name, t in (("query", query), ("key", key), ("value", value)):
            if t.ndim not in (2, 3) or t.ndim != query.ndim:
                raise ValueError(f"MultiheadAttention: expected {name} of shape {layout} or unbatched (L, E), like "
                                 f"the query {tuple(query.shape)}; found {tuple(t.shape)}")
            if t.shape[-1] != self.embed_dim:
                raise ValueError(f"MultiheadAttention: expected {name} with embed_dim={self.embed_dim} features, "
                                 f"found shape {tuple(t.shape)}")
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(f"MultiheadAttention: key and value must have the same length and batch, found "
                             f"{tuple(key.shape)} and {tuple(value.shape)}")
        batch_axis = 0 if self.batch_first else 1
        if query.ndim == 3 and query.shape[batch_axis] != key.shape[batch_axis]:
            raise ValueError(f"MultiheadAttention: query and key must have the same batch size, found "
                             f"{tuple(query.shape)} and {tuple(key.shape)}")

    def _merged_mask(self, key_padding_mask: Tensor | None, attn_mask: Tensor | None, batch: int, length: int,
                     source: int, dtype: Any) -> Tensor | None:
        """key_padding_mask and attn_mask combined into one mask for scaled_dot_product_attention, shaped to
        broadcast to the scores (batch, heads, L, S): boolean (True = attend) if both are boolean, else additive
        (a boolean one becomes 0 / -inf)."""
        masks = []
        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (batch, source):
                raise ValueError(f"MultiheadAttention: expected key_padding_mask of shape {(batch, source)} "
                                 f"(batch, source length), found {tuple(key_padding_mask.shape)}")
            masks.append(key_padding_mask.reshape(batch, 1, 1, source))
        if attn_mask is not None:
            if tuple(attn_mask.shape) == (length, source):
                masks.append(attn_mask)
            elif tuple(attn_mask.shape) == (batch * self.num_heads, length, source):
                masks.append(attn_mask.reshape(batch, self.num_heads, length, source))
            else:
                raise ValueError(f"MultiheadAttention: expected attn_mask of shape {(length, source)} or "
                                 f"{(batch * self.num_heads, length, source)}, found {tuple(attn_mask.shape)}")
        if not masks:
            return None
        if all(mask.dtype.kind == "b" for mask in masks):
            allowed = ~masks[0].data
            for mask in masks[1:]:
                allowed = allowed & ~mask.data
            return constant(allowed)
        xp = get_array_module(masks[0].data)
        additive = [constant(xp.where(m.data, -xp.inf, 0).astype(dtype)) if m.dtype.kind == "b" else m
                    for m in masks]
        total = additive[0]
        for mask in additive[1:]:
            total = total + mask
        return total

    # ------------------------------------------------------------------------------------------ forward
    def _project(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Q, K, V = the inputs times W_q, W_k, W_v (plus biases), split into heads (N, heads, length, head_dim).

        Self-attention makes one product, (N, L, 3E) = [Q | K | V], and takes the three as views of it through
        (N, L, 3, heads, head_dim): their gradients then meet in one copy (the backward of the split, a ``cat``
        along the axis of 3) instead of a copy each back to (N, L, E) and a ``cat`` of those."""
        weight, bias = self.in_proj_weight, self.in_proj_bias
        if query is key and key is value:
            packed = F.linear(query, weight, bias)
            packed = packed.reshape(packed.shape[0], packed.shape[1], 3, self.num_heads, self.head_dim)
            return tuple(part.squeeze(2).transpose(1, 2) for part in F.split(packed, 1, 2))
        weights = F.chunk(weight, 3, 0)
        biases = F.chunk(bias, 3, 0) if bias is not None else (None,) * 3
        return tuple(self._split_heads(F.linear(x, w, b)) for x, w, b in zip((query, key, value), weights, biases))

    def _split_heads(self, x: Tensor) -> Tensor:
        """(N, length, E) -> (N, heads, length, head_dim)."""
        return x.reshape(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        self._check_inputs(query, key, value)
        unbatched = query.ndim == 2
        self_attention = query is key and key is value
        if unbatched:
            query, key, value = (t.unsqueeze(0) for t in (query, key, value))
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.reshape(1, -1)
        elif not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        if self_attention:
            key = value = query
        batch, length, source = query.shape[0], query.shape[1], key.shape[1]
        causal = is_causal and attn_mask is None
        if causal and key_padding_mask is not None:  # the causal mask has to be merged with the padding mask
            attn_mask, causal = constant(~causal_mask(get_array_module(query.data), length, source)), False
        mask = self._merged_mask(key_padding_mask, attn_mask, batch, length, source, query.dtype)
        q, k, v = self._project(query, key, value)
        result = F.scaled_dot_product_attention(q, k, v, mask, dropout_p=self.dropout if self.training else 0.0,
                                                is_causal=causal, need_weights=need_weights)
        heads, weights = result if need_weights else (result, None)
        output = self.out_proj(heads.transpose(1, 2).reshape(batch, length, self.embed_dim))
        if weights is not None and average_attn_weights:
            weights = weights.mean(dim=1)
        if unbatched:
            return output.squeeze(0), None if weights is None else weights.squeeze(0)
        return (output if self.batch_first else output.transpose(0, 1)), weights

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, " \
               f"batch_first={self.batch_first}"
