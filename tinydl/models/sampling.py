"""Choosing the next token from a language model's logits: greedy, temperature, top-k and top-p (nucleus).

For logits z over the vocabulary and temperature T > 0, the distribution is p = softmax(z / T); top-k keeps the
k most likely tokens, top-p the smallest set of most likely tokens whose probability reaches p (at least one),
and the kept probabilities are renormalised before drawing. T = 0 is greedy decoding: argmax z.
"""
from __future__ import annotations

from typing import Any

import numpy

__all__ = ["sample_next_token"]


def sample_next_token(logits: Any, temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
                      rng: numpy.random.Generator | None = None) -> numpy.ndarray:
    """One token id per row of ``logits`` (N, vocab) (a NumPy array on the host), as int64 (N,)."""
    if temperature < 0:
        raise ValueError(f"sample_next_token: temperature must be >= 0, found {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"sample_next_token: top_k must be a positive int, found {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"sample_next_token: top_p must lie in (0, 1], found {top_p}")
    logits = numpy.asarray(logits, dtype=numpy.float64)
    if temperature == 0:
        return logits.argmax(axis=-1).astype(numpy.int64)
    rng = rng if rng is not None else numpy.random.default_rng()
    order = numpy.argsort(-logits, axis=-1, kind="stable")              # most likely first
    ranked = numpy.take_along_axis(logits, order, axis=-1) / temperature
    probabilities = numpy.exp(ranked - ranked[:, :1])
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    keep = numpy.ones_like(probabilities, dtype=bool)
    if top_k is not None:
        keep[:, top_k:] = False
    if top_p is not None:
        mass_before = numpy.cumsum(probabilities, axis=-1) - probabilities  # probability of the better tokens
        keep &= mass_before < top_p
    probabilities = numpy.where(keep, probabilities, 0.0)
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    choices = [rng.choice(probabilities.shape[1], p=row) for row in probabilities]
    return order[numpy.arange(len(choices)), choices].astype(numpy.int64)
