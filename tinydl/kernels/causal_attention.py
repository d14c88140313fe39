"""Causal attention in query tiles: the masked upper-right blocks of the scores are never computed (NumPy).

With a causal mask, query i attends keys j <= i only, so in the L x L scores (L = S) everything above the
diagonal is -inf and gives P = 0. Cutting the queries into T tiles of consecutive rows [a, b), tile t needs the
keys [0, b) only:

    S_t = Q[a:b] (scale K[:b])^T                 (b - a) x b scores, the causal mask applied to their last block
    P_t = softmax(S_t)                           row-wise, as in :func:`.attention.attention_weights_`
    O[a:b] = P_t V[:b]

which computes (T + 1) / 2T of the dense scores (5/8 with T = 4), in the GEMMs, the softmax and the memory that
keeps P for backward. The backward runs over the same tiles (see :mod:`.attention` for the formulas and for
why the scale rides on V^T):

    dV[:b] += P_t^T dO[a:b],   dS'_t = P_t (dO[a:b] (scale V[:b])^T - scale rowsum(dO[a:b] * O[a:b])),
    dQ[a:b] = dS'_t K[:b],     dK[:b] += dS'_t^T Q[a:b].

It applies when the mask is exactly causal (``is_causal``, or a boolean or additive (L, L) mask equal to it),
L = S >= :data:`MIN_LENGTH`, Q, K and V share their batch shape, and neither dropout, the returned weights nor
a gradient of the mask is wanted; the dense path does everything else. Taken on NumPy only: a GPU prefers one
large kernel to a few smaller ones.
"""
from __future__ import annotations

import math
from typing import Any

from ..backend import get_array_module
from .attention import attention_weights_, output_buffer, row_dot, scaled_transpose

__all__ = ["TILES", "MIN_LENGTH", "tiles_pay", "is_causal_mask", "tile_bounds", "tiled_score_count",
           "causal_forward", "causal_backward"]

TILES = 4          # query tiles: 5/8 of the dense work; more tiles save less each and make smaller GEMMs
MIN_LENGTH = 64    # below this, tiles of a few rows cost more in calls than they save


def tiles_pay(xp: Any, length: int) -> bool:
    """Whether query tiles beat the dense scores for sequences of ``length``: on NumPy from :data:`MIN_LENGTH` on
    (a GPU prefers one large kernel to a few smaller ones)."""
    return xp.__name__ == "numpy" and length >= MIN_LENGTH


def _causal_additive(xp: Any, length: int, dtype: Any) -> Any:
    """The (L, L) additive causal mask: 0 where j <= i, -inf above the diagonal."""
    return xp.triu(xp.full((length, length), -math.inf, dtype=dtype), k=1)


def is_causal_mask(xp: Any, length: int, allowed: Any = None, additive_mask: Any = None) -> bool:
    """True when the mask (boolean ``allowed``, True = attend, or additive) is one (L, L) causal mask, possibly
    with leading axes of size 1; False for anything else (including both masks at once, or neither)."""
    mask = allowed if additive_mask is None else additive_mask
    if (allowed is None) == (additive_mask is None) or mask.size != length * length or mask.shape[-2:] != (
            length, length):
        return False
    mask = mask.reshape(length, length)
    if additive_mask is None:
        return bool((mask == xp.tril(xp.ones((length, length), dtype=bool))).all())
    return bool((mask == _causal_additive(xp, length, mask.dtype)).all())


def tile_bounds(length: int, tiles: int) -> list[tuple[int, int]]:
    """Rows [a, b) of each query tile, as equal as possible."""
    edges = [round(length * t / tiles) for t in range(tiles + 1)]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def tiled_score_count(length: int) -> int:
    """How many of the L x L scores the tiles compute (per batch entry)."""
    return sum((b - a) * b for a, b in tile_bounds(length, TILES))


def causal_forward(q: Any, k: Any, v: Any, scale: float) -> tuple[Any, list[Any]]:
    """(O, [P_t per tile]) of causal attention; O in the layout of :func:`.attention.output_buffer`."""
    xp = get_array_module(q)
    length = q.shape[-2]
    key_t = scaled_transpose(k, scale)
    mask = _causal_additive(xp, length, q.dtype)
    output = output_buffer(xp, q.shape[:-2], length, v.shape[-1], xp.result_type(q, v))
    tiles = []
    for a, b in tile_bounds(length, TILES):
        weights = attention_weights_(q[..., a:b, :] @ key_t[..., :b], mask[a:b, :b])
        xp.matmul(weights, v[..., :b, :], out=output[..., a:b, :])
        tiles.append(weights)
    return output, tiles


def causal_backward(q: Any, k: Any, v: Any, tiles: list[Any], output: Any, grad_output: Any, scale: float,
                    needs: tuple[bool, ...]) -> tuple[Any, Any, Any]:
    """(dQ, dK, dV) from the tiles of :func:`causal_forward`, None where ``needs`` says no gradient is wanted."""
    xp = get_array_module(q)
    grad_q = xp.empty(q.shape, dtype=q.dtype) if needs[0] else None
    grad_k = grad_v = None
    value_t = scaled_transpose(v, scale) if needs[0] or needs[1] else None
    for weights in reversed(tiles):           # the last tile sees every key: its products start dK and dV
        b = weights.shape[-1]                 # the tile's queries [a, b) saw the keys [0, b)
        a = b - weights.shape[-2]
        grad_tile = grad_output[..., a:b, :]
        if needs[2]:
            grad_v = _accumulate(grad_v, xp.swapaxes(weights, -1, -2) @ grad_tile)
        if not (needs[0] or needs[1]):
            continue
        grad_scores = grad_tile @ value_t[..., :b]                        # scale dP, then scale dS in place
        correction = row_dot(grad_tile, output[..., a:b, :])
        correction *= correction.dtype.type(scale)
        grad_scores -= correction
        grad_scores *= weights
        if needs[0]:
            xp.matmul(grad_scores, k[..., :b, :], out=grad_q[..., a:b, :])
        if needs[1]:
            grad_k = _accumulate(grad_k, xp.swapaxes(grad_scores, -1, -2) @ q[..., a:b, :])
    return grad_q, grad_k, grad_v


def _accumulate(total: Any, part: Any) -> Any:
    """total[..., :n, :] += part (n = part's rows), or part itself when there is no total yet."""
    if total is None:
        return part
    total[..., :part.shape[-2], :] += part
    return total
