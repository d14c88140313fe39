"""Scaled dot-product attention, fused: one Function whose backward keeps only the attention probabilities.

For queries Q (..., L, E), keys K (..., S, E) and values V (..., S, Ev):

    scores  S = scale * Q K^T (+ an additive mask; -inf where a boolean mask is False or causality forbids)
    weights P = softmax(S) along the keys (row-wise, shifted by each row's maximum where exp could otherwise
                overflow); a row whose keys are all masked gets P = 0 (not NaN) and zero gradient
    dropout P' = P * keep / (1 - p) with keep ~ Bernoulli(1 - p) (only when dropout_p > 0)
    output  O = P' V                                                                      (..., L, Ev)

Backward, with dO the gradient of the output and D = rowsum(dO * O) (= rowsum(dP' * P'), but of size L x Ev
instead of L x S):

    dV = P'^T dO,   dP = (dO V^T) * keep / (1 - p),   dS = P * (dP - D),
    dQ = scale * dS K,   dK = scale * dS^T Q,   d(additive mask) = dS.

Only P, O (and the dropout's boolean keep mask) are stored for backward. The plain backward runs on raw arrays
(:mod:`tinydl.kernels.attention`, which also holds the forward's masked softmax and says how each is made
fast; with an exact causal mask on the CPU, :mod:`tinydl.kernels.causal_attention` computes and keeps only the
unmasked query-key tiles); a backward that is itself recorded (``create_graph``) is written with tinydl ops, so
it is differentiable again, and recomputes P as a differentiable function of Q and K.
"""
from __future__ import annotations

import math
from typing import Any

from ..autograd import Function, is_grad_enabled
from ..backend import device_of, get_array_module
from ..creation import default_generator
from ..kernels import causal_attention
from ..kernels.attention import attention_backward, attention_output, attention_weights_, scaled_transpose
from ..tensor import Tensor
from ._device import on_the_inputs_device
from .activation import softmax
from .elementwise import constant, where
from .reduction import sum

__all__ = ["scaled_dot_product_attention"]


def causal_mask(xp: Any, query_length: int, key_length: int) -> Any:
    """Boolean (L, S) mask, True where query i may attend to key j <= i (PyTorch's lower-left alignment)."""
    return xp.tril(xp.ones((query_length, key_length), dtype=bool))


class ScaledDotProductAttention(Function):
    """softmax(scale Q K^T + mask) V, optionally with dropout on the weights; see the module docstring.

    Inputs: Q, K, V and, when the mask is additive (a float tensor), the mask itself (it may require grad).
    ``allowed`` is the boolean mask (a boolean ``attn_mask``, the causal mask, or both combined), or None.
    With ``return_weights`` the Function has a second output, the (dropped-out) weights P'.
    """

    name = "scaled_dot_product_attention"

    def _score_count(self, q: Any, k: Any) -> int:
        """Scores computed: L S per batch entry, or only those of the causal tiles."""
        batch = q.size // (q.shape[-1] * q.shape[-2])
        if self.causal_tiles:
            return batch * causal_attention.tiled_score_count(q.shape[-2])
        return batch * q.shape[-2] * k.shape[-2]

    def flops(self, inputs, outputs):
        """scale K, Q K^T (2 E per score), the mask, the softmax (5 per score), P V (2 Ev per score)."""
        q, k, v = inputs[:3]
        scores = self._score_count(q, k)
        return (k.size + 2 * scores * q.shape[-1] + (len(inputs) == 4) * scores
                + 5 * scores + 2 * scores * v.shape[-1])

    def backward_flops(self, grad_outputs, grad_inputs):
        """Of the plain backward on raw arrays: the four products (dV, dO V^T, dQ, dK: 2 E per score each, with
        Ev = E), D (2 L Ev) and the softmax correction P (dP - D) (2 per score); the recorded backward's ops
        count themselves."""
        if is_grad_enabled():
            return 0
        q, k, v = self.inputs[:3]
        scores = self._score_count(q.data, k.data)
        return 4 * scores * q.shape[-1] + 2 * q.size // q.shape[-1] * v.shape[-1] + 2 * scores

    def __init__(self, scale: float, allowed: Any, dropout_p: float, return_weights: bool):
        self.scale, self.allowed, self.dropout_p, self.return_weights = scale, allowed, dropout_p, return_weights

    def _takes_causal_tiles(self, q: Any, k: Any, v: Any, additive_mask: Any) -> bool:
        """Whether the forward runs in causal query tiles (:mod:`tinydl.kernels.causal_attention`)."""
        xp = get_array_module(q)
        length = q.shape[-2]
        return (causal_attention.tiles_pay(xp, length) and self.dropout_p == 0 and not self.return_weights
                and length == k.shape[-2]
                and q.shape[:-2] == k.shape[:-2] == v.shape[:-2]
                and not (additive_mask is not None and self.needs_input_grad[3])
                and causal_attention.is_causal_mask(xp, length, self.allowed, additive_mask))

    def forward(self, q, k, v, additive_mask=None):
        self.keep = None
        self.causal_tiles = self._takes_causal_tiles(q, k, v, additive_mask)
        if self.causal_tiles:
            output, tiles = causal_attention.causal_forward(q, k, v, self.scale)
            if any(self.needs_input_grad):
                self.probabilities, self.output_array = tiles, output
            return output
        xp = get_array_module(q)
        # a contiguous scale K^T (one small copy, the scale folded into it) makes the product faster than
        # through a transposed view
        scores = q @ scaled_transpose(k, self.scale)
        probabilities = attention_weights_(scores, additive_mask, self.allowed)
        weights = probabilities
        if self.dropout_p > 0:
            generator = default_generator(device_of(q))
            self.keep = generator.random(probabilities.shape, dtype=q.dtype) >= self.dropout_p
            weights = probabilities * xp.multiply(self.keep, 1 / (1 - self.dropout_p), dtype=q.dtype)
        output = attention_output(weights, v)
        if any(self.needs_input_grad):
            self.probabilities, self.output_array = probabilities, output
        return (output, weights) if self.return_weights else output

    # ---------------------------------------------------------------------------------------- backward
    def backward(self, grad_output, grad_weights=None):
        if not is_grad_enabled():
            return self._plain_backward(grad_output, grad_weights)
        return self._differentiable_backward(grad_output, grad_weights)

    def _plain_backward(self, grad_output: Tensor, grad_weights: Tensor | None) -> tuple[Tensor | None, ...]:
        """The first-order backward on raw arrays, from the stored P (or its causal tiles) and O
        (:mod:`tinydl.kernels.attention`, :mod:`tinydl.kernels.causal_attention`)."""
        q, k, v = (t.data for t in self.inputs[:3])
        if self.causal_tiles:
            grads = causal_attention.causal_backward(q, k, v, self.probabilities, self.output_array,
                                                     grad_output.data, self.scale, self.needs_input_grad)
            return tuple(None if g is None else constant(g) for g in grads) + (None,) * (len(self.inputs) - 3)
        xp = get_array_module(q)
        keep = None if self.keep is None else xp.multiply(self.keep, 1 / (1 - self.dropout_p), dtype=q.dtype)
        grads = attention_backward(q, k, v, self.probabilities, self.output_array, grad_output.data,
                                   None if grad_weights is None else grad_weights.data, keep, self.scale,
                                   self.needs_input_grad)
        return tuple(None if g is None else constant(g) for g in grads[:len(self.inputs)])

    def _differentiable_backward(self, grad_output: Tensor, grad_weights: Tensor | None
                                 ) -> tuple[Tensor | None, ...]:
        """The backward written with tinydl ops, for a backward that is itself recorded (create_graph): P is
        recomputed as a differentiable function of Q, K (and the additive mask), and D = rowsum(dP * P) is
        taken in its direct form, in which every factor is differentiable."""
        q, k, v = self.inputs[:3]
        needs = self.needs_input_grad
        probabilities = self._recomputed_probabilities()
        keep = None if self.keep is None else constant(
            get_array_module(self.keep).multiply(self.keep, 1 / (1 - self.dropout_p), dtype=q.dtype))
        weights = probabilities if keep is None else probabilities * keep
        grad_v = weights.mT @ grad_output if needs[2] else None
        if not (needs[0] or needs[1] or (len(needs) == 4 and needs[3])):
            return (None, None, grad_v) + (None,) * (len(needs) - 3)
        grad_weights_total = grad_output @ v.mT
        if grad_weights is not None:
            grad_weights_total = grad_weights_total + grad_weights
        grad_probabilities = grad_weights_total if keep is None else grad_weights_total * keep
        row_dot = sum(grad_probabilities * probabilities, -1, keepdim=True)
        grad_scores = probabilities * (grad_probabilities - row_dot)
        grad_q = (grad_scores @ k) * self.scale if needs[0] else None
        grad_k = (grad_scores.mT @ q) * self.scale if needs[1] else None
        grad_mask = grad_scores if len(needs) == 4 and needs[3] else None
        return grad_q, grad_k, grad_v, grad_mask

    def _recomputed_probabilities(self) -> Tensor:
        """P recomputed from Q, K (and the additive mask) with differentiable ops."""
        q, k = self.inputs[0], self.inputs[1]
        scores = (q * self.scale) @ k.mT
        if len(self.inputs) == 4:
            scores = scores + self.inputs[3]
        xp = get_array_module(scores.data)
        negative_infinity = constant(xp.asarray(-math.inf, dtype=scores.dtype))
        if self.allowed is not None:
            scores = where(self.allowed, scores, negative_infinity)
        dead_rows = ~xp.isfinite(scores.data.max(axis=-1, keepdims=True))
        zero = constant(xp.zeros((), dtype=scores.dtype))
        probabilities = softmax(where(dead_rows, zero, scores), -1)
        return where(dead_rows, zero, probabilities)


# -------------------------------------------------------------------------------------------- validation
def broadcast_shapes(op: str, what: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    """The NumPy broadcast of ``shapes``, or a ValueError naming ``op``, ``what`` and the shapes."""
    ndim = max(len(shape) for shape in shapes)
    result = []
    for axis in range(-ndim, 0):
        sizes = {shape[axis] for shape in shapes if len(shape) >= -axis} - {1}
        if len(sizes) > 1:
            listing = ", ".join(str(tuple(shape)) for shape in shapes)
            raise ValueError(f"{op}: {what} do not broadcast together: {listing}")
        result.append(sizes.pop() if sizes else 1)
    return tuple(result)


def _check_mask(attn_mask: Any, scores_shape: tuple[int, ...], dtype: Any) -> None:
    op = "scaled_dot_product_attention"
    mask_shape = tuple(attn_mask.shape)
    fits = len(mask_shape) <= len(scores_shape) and all(
        m in (1, s) for m, s in zip(mask_shape[::-1], scores_shape[::-1]))
    if not fits:
        raise ValueError(f"{op}: attn_mask of shape {mask_shape} does not broadcast to the attention scores of "
                         f"shape {scores_shape} (batch..., query length, key length)")
    if attn_mask.dtype.kind != "b" and attn_mask.dtype != dtype:
        raise TypeError(f"{op}: attn_mask must be boolean (True = attend) or of the query's dtype {dtype} "
                        f"(added to the scores), found {attn_mask.dtype}")


def _group_query_heads(query: Tensor, key: Tensor, value: Tensor, attn_mask: Any
                       ) -> tuple[Tensor, Tensor, Tensor, Any]:
    """Grouped-query attention as ordinary broadcasting: query (..., Hq, L, E) and key/value (..., Hkv, S, E)
    with Hq = G Hkv become query (..., Hkv, G, L, E) and key/value (..., Hkv, 1, S, E), so each key/value head
    is shared by its G query heads without a copy, and the engine's sum over the broadcast axis adds up the
    gradients that a key/value head receives from its group. A mask with a heads axis is regrouped likewise."""
    op = "scaled_dot_product_attention"
    if min(query.ndim, key.ndim, value.ndim) < 3:
        raise ValueError(f"{op}: enable_gqa needs query, key and value of shape (..., heads, length, features), "
                         f"found {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
    query_heads, kv_heads = query.shape[-3], key.shape[-3]
    if value.shape[-3] != kv_heads or query_heads % kv_heads:
        raise ValueError(f"{op}: enable_gqa needs key and value with the same number of heads dividing the query's "
                         f"{query_heads}, found query {tuple(query.shape)}, key {tuple(key.shape)}, value "
                         f"{tuple(value.shape)}")
    groups = query_heads // kv_heads
    query = query.reshape(query.shape[:-3] + (kv_heads, groups) + query.shape[-2:])
    key, value = key.unsqueeze(-3), value.unsqueeze(-3)
    if attn_mask is not None:
        attn_mask = attn_mask if isinstance(attn_mask, Tensor) else Tensor(attn_mask)
        if attn_mask.ndim >= 3 and attn_mask.shape[-3] == query_heads:
            attn_mask = attn_mask.reshape(attn_mask.shape[:-3] + (kv_heads, groups) + attn_mask.shape[-2:])
        elif attn_mask.ndim >= 3:
            attn_mask = attn_mask.unsqueeze(-3)
    return query, key, value, attn_mask


@on_the_inputs_device
def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 need_weights: bool = False, enable_gqa: bool = False) -> Any:
    """softmax(Q K^T * scale + mask) V, as ``torch.nn.functional.scaled_dot_product_attention``.

    query (..., L, E), key (..., S, E), value (..., S, Ev), batch dimensions broadcasting; returns (..., L, Ev).
    ``attn_mask`` broadcasts to (..., L, S): boolean (True = take part in attention) or float (added to the
    scores). ``is_causal`` masks keys j > i. ``scale`` defaults to 1 / sqrt(E). Rows with every key masked give
    zeros. ``need_weights=True`` (a tinydl extension, used by MultiheadAttention) also returns the attention
    weights (..., L, S), differentiable. ``enable_gqa`` (grouped-query attention, as in PyTorch): query
    (..., Hq, L, E) and key/value (..., Hkv, S, E) with Hkv dividing Hq; query head h uses key/value head
    h // (Hq / Hkv).
    """
    op = "scaled_dot_product_attention"
    if enable_gqa:
        heads = query.shape[-3:-2]
        grouped = _group_query_heads(query, key, value, attn_mask)
        result = scaled_dot_product_attention(*grouped, dropout_p, is_causal, scale, need_weights)
        outputs = result if need_weights else (result,)
        outputs = tuple(t.reshape(t.shape[:-4] + heads + t.shape[-2:]) for t in outputs)  # (..., Hq, L, .)
        return outputs if need_weights else outputs[0]
    for name, t in (("query", query), ("key", key), ("value", value)):
        if t.ndim < 2:
            raise ValueError(f"{op}: expected {name} of shape (..., length, features), found {tuple(t.shape)}")
        if t.dtype.kind != "f":
            raise TypeError(f"{op}: expected a floating {name}, found dtype {t.dtype}")
    if key.dtype != query.dtype or value.dtype != query.dtype:
        raise TypeError(f"{op}: query, key and value must share one dtype, found {query.dtype}, {key.dtype}, "
                        f"{value.dtype}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(f"{op}: query and key need the same feature size, found query {tuple(query.shape)} and "
                         f"key {tuple(key.shape)}")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"{op}: key and value need the same length, found key {tuple(key.shape)} and value "
                         f"{tuple(value.shape)}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"{op}: dropout_p must lie in [0, 1), found {dropout_p}")
    batch = broadcast_shapes(op, "the batch dimensions of query and key", query.shape[:-2], key.shape[:-2])
    broadcast_shapes(op, "the batch dimensions of the scores and value", batch, value.shape[:-2])
    scores_shape = batch + (query.shape[-2], key.shape[-2])
    xp = get_array_module(query.data)
    allowed, additive = None, None
    if attn_mask is not None:
        if is_causal:
            raise ValueError(f"{op}: give either attn_mask or is_causal=True, not both")
        attn_mask = attn_mask if isinstance(attn_mask, Tensor) else Tensor(attn_mask)
        _check_mask(attn_mask, scores_shape, query.dtype)
        if attn_mask.dtype.kind == "b":
            allowed = attn_mask.data
        else:
            additive = attn_mask
    if is_causal:
        allowed = causal_mask(xp, query.shape[-2], key.shape[-2])
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])
    function = ScaledDotProductAttention(float(scale), allowed, float(dropout_p), need_weights)
    return function(query, key, value) if additive is None else function(query, key, value, additive)
