"""The cosine and sine tables of rotary position embedding, for :func:`tinydl.functional.apply_rotary`.

For head size D and base ``theta``, pair i (features i and i + D/2, the "rotate_half" pairing) turns at the
frequency w_i = theta^(-2i/D), i = 0 .. D/2 - 1; at position p its angle is p * w_i, and

    cos[p] = [cos(p w_0), ..., cos(p w_{D/2-1}), cos(p w_0), ..., cos(p w_{D/2-1})]   (each half repeated)

and sin likewise. The angles are computed in float64 and rounded once to ``dtype``.
"""
from __future__ import annotations

from typing import Any

from ..backend import array_module_for
from ..tensor import Tensor

__all__ = ["rotary_cos_sin"]


def rotary_cos_sin(positions: Any, head_dim: int, theta: float = 10000.0, dtype: Any = "float32",
                   device: Any = "cpu") -> tuple[Tensor, Tensor]:
    """(cos, sin), each of shape positions.shape + (head_dim,), for integer ``positions`` (an array or
    sequence)."""
    if not isinstance(head_dim, int) or head_dim <= 0 or head_dim % 2:
        raise ValueError(f"rotary_cos_sin: head_dim must be a positive even int, got {head_dim!r}")
    if theta <= 0:
        raise ValueError(f"rotary_cos_sin: theta must be positive, got {theta}")
    xp = array_module_for(device)
    frequencies = theta ** (-xp.arange(0, head_dim, 2, dtype=xp.float64) / head_dim)
    angles = xp.asarray(positions, dtype=xp.float64)[..., None] * frequencies
    angles = xp.concatenate([angles, angles], axis=-1)
    return Tensor(xp.cos(angles).astype(dtype)), Tensor(xp.sin(angles).astype(dtype))
