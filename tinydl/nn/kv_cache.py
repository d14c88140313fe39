"""``KVCache``: the keys and values of the positions a decoder has already seen, for incremental decoding.

A causal decoder's keys and values at position p depend only on the tokens 0..p, so when it generates token
t + 1 it needs to compute them for the new position only and can read positions 0..t from a cache. Each step
then costs one position instead of t + 1 (the attention itself still reads all t + 1 keys).

The cache is preallocated for ``max_length`` positions (one array per layer for keys and one for values, shape
(batch, kv_heads, max_length, head_dim)), so a step writes into it and never reallocates. A forward pass writes
the new keys and values of every layer at positions ``length .. length + T - 1`` (:meth:`update`), then moves
the cache on with :meth:`advance`. It holds plain arrays: it serves inference, no gradient flows through the
cached keys and values.
"""
from __future__ import annotations

from typing import Any

from ..backend import array_module_for, device_of
from ..functional.elementwise import constant
from ..tensor import Tensor

__all__ = ["KVCache"]


class KVCache:
    """Keys and values of ``num_layers`` attention layers for up to ``max_length`` positions."""

    def __init__(self, num_layers: int, batch: int, kv_heads: int, head_dim: int, max_length: int,
                 dtype: Any = "float32", device: Any = "cpu"):
        for name, value in (("num_layers", num_layers), ("batch", batch), ("kv_heads", kv_heads),
                            ("head_dim", head_dim), ("max_length", max_length)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"KVCache: {name} must be a positive int, got {value!r}")
        xp = array_module_for(device)
        shape = (num_layers, batch, kv_heads, max_length, head_dim)
        self.keys, self.values = xp.zeros(shape, dtype=dtype), xp.zeros(shape, dtype=dtype)
        self.length = 0

    @property
    def max_length(self) -> int:
        return self.keys.shape[3]

    def update(self, layer: int, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """Store ``key`` and ``value`` (batch, kv_heads, T, head_dim) of ``layer`` at positions
        length .. length + T - 1; return the keys and values of positions 0 .. length + T - 1 (views)."""
        expected = self.keys.shape[1:3] + self.keys.shape[4:]
        for name, t in (("key", key), ("value", value)):
            if t.ndim != 4 or tuple(t.shape[:2]) + tuple(t.shape[3:]) != expected:
                raise ValueError(f"KVCache.update: expected {name} of shape (batch, kv_heads, T, head_dim) = "
                                 f"({expected[0]}, {expected[1]}, T, {expected[2]}), found {tuple(t.shape)}")
            if device_of(t.data) != device_of(self.keys):
                raise RuntimeError(f"KVCache.update: {name} is on {device_of(t.data)}, the cache on "
                                   f"{device_of(self.keys)}")
        end = self.length + key.shape[2]
        if end > self.max_length:
            raise ValueError(f"KVCache.update: {key.shape[2]} new positions after {self.length} exceed the cache's "
                             f"max_length of {self.max_length}")
        self.keys[layer, :, :, self.length:end] = key.data
        self.values[layer, :, :, self.length:end] = value.data
        return constant(self.keys[layer, :, :, :end]), constant(self.values[layer, :, :, :end])

    def advance(self, steps: int) -> None:
        """Mark ``steps`` more positions as stored (call once per forward pass, after every layer's update)."""
        self.length += steps

    def causal_mask(self, query_length: int) -> Any:
        """Boolean (query_length, length + query_length) mask for the new queries, True where attention is
        allowed: the query at position t = length + i attends to keys 0..t (causality with an offset). None for a
        single query, which may attend to every stored key."""
        if query_length == 1:
            return None
        xp = array_module_for(device_of(self.keys))
        total = self.length + query_length
        return xp.tril(xp.ones((query_length, total), dtype=bool), k=self.length)

    def reset(self) -> None:
        """Forget every stored position (the arrays are kept for reuse)."""
        self.length = 0
