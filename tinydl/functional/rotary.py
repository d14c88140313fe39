"""Rotary position embedding (RoPE; Su et al., 2021), in the "rotate_half" pairing of Llama as Hugging Face
stores it.

A query or key vector x of even size D is split into halves x = [a, b] (a = x[:D/2], b = x[D/2:]). Feature i of
the first half and feature i + D/2 of the second form a pair, rotated by the angle p * w_i at position p
(w_i = theta^(-2i/D), :func:`tinydl.nn.rotary_cos_sin` builds the tables):

    y = x * cos + rotate_half(x) * sin,     rotate_half([a, b]) = [-b, a],

with cos = [cos(p w), cos(p w)] and sin = [sin(p w), sin(p w)] (each half repeated). Then <R_p q, R_s k> depends
only on p - s: attention sees relative positions. (The original paper and the GGUF files pair neighbouring
features (2i, 2i + 1) instead; the two conventions differ by a fixed permutation of the features, which
tinydl.models.llama undoes when it loads a GGUF file.)

Backward (R = rotate_half is linear and R^T [u, v] = [v, -u]):

    dx = g * cos + R^T (g * sin),    dcos = g * x,    dsin = g * R(x)

(the engine sums dcos and dsin back over any broadcast batch axes), written with tinydl ops, so differentiable
again.
"""
from __future__ import annotations

from ..autograd import Function
from ..costs import elementwise
from ..tensor import Tensor
from .shape import cat

__all__ = ["apply_rotary"]


def _rotate_half(x: Tensor) -> Tensor:
    """[a, b] -> [-b, a] along the last axis."""
    half = x.shape[-1] // 2
    return cat([-x[..., half:], x[..., :half]], -1)


def _rotate_half_transposed(x: Tensor) -> Tensor:
    """[u, v] -> [v, -u] along the last axis (the transpose of rotate_half)."""
    half = x.shape[-1] // 2
    return cat([x[..., half:], -x[..., :half]], -1)


class ApplyRotary(Function):
    """y = x * cos + rotate_half(x) * sin; see the module docstring."""

    name = "apply_rotary"
    flops = elementwise(3)  # x cos, rotate_half(x) sin, their sum

    def forward(self, x, cos, sin):
        half = x.shape[-1] // 2
        rotated = x * cos
        rotated[..., :half] -= x[..., half:] * sin[..., :half]
        rotated[..., half:] += x[..., :half] * sin[..., half:]
        return rotated

    def backward(self, g):
        x, cos, sin = self.inputs
        needs = self.needs_input_grad
        grad_x = g * cos + _rotate_half_transposed(g * sin) if needs[0] else None
        grad_cos = g * x if needs[1] else None
        grad_sin = g * _rotate_half(x) if needs[2] else None
        return grad_x, grad_cos, grad_sin


def apply_rotary(input: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the feature pairs (i, i + D/2) of ``input`` (..., T, D) by the angles whose cosines and sines are
    ``cos`` and ``sin`` (shape broadcasting to the input's, typically (T, D) from
    :func:`tinydl.nn.rotary_cos_sin`): ``input * cos + rotate_half(input) * sin``."""
    op = "apply_rotary"
    for name, t in (("input", input), ("cos", cos), ("sin", sin)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected {name} to be a Tensor, got {type(t).__name__}")
        if t.dtype.kind != "f":
            raise TypeError(f"{op}: expected a floating {name}, found dtype {t.dtype}")
    if input.ndim < 1 or input.shape[-1] % 2:
        raise ValueError(f"{op}: the input's last dimension (the head size) must be even, found shape "
                         f"{tuple(input.shape)}")
    if tuple(cos.shape) != tuple(sin.shape):
        raise ValueError(f"{op}: cos and sin must have the same shape, found {tuple(cos.shape)} and "
                         f"{tuple(sin.shape)}")
    if cos.ndim > input.ndim or any(c not in (1, i) for c, i in zip(cos.shape[::-1], input.shape[::-1])) \
            or cos.shape[-1] != input.shape[-1]:
        raise ValueError(f"{op}: cos and sin of shape {tuple(cos.shape)} do not broadcast to the input of shape "
                         f"{tuple(input.shape)} (they need its last dimension and broadcastable leading ones)")
    if cos.dtype != input.dtype or sin.dtype != input.dtype:
        raise TypeError(f"{op}: input, cos and sin must share one dtype, found {input.dtype}, {cos.dtype}, "
                        f"{sin.dtype}")
    return ApplyRotary()(input, cos, sin)
