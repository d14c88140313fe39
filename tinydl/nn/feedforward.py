"""``SwiGLU``: the gated feed-forward block of Llama-family Transformers (Shazeer, 2020).

    ffn(x) = down_proj( silu(gate_proj(x)) * up_proj(x) )

gate_proj and up_proj map the model width d to the hidden width h, down_proj maps h back to d; no biases.
The gate's silu(z) = z * sigmoid(z) decides, feature by feature, how much of the "up" projection passes.
Both input projections are one matrix product: ``gate_up_proj`` holds gate_proj's h rows, then up_proj's.
"""
from __future__ import annotations

from typing import Any

from .. import functional as F
from ..tensor import Tensor
from .linear import Linear
from .module import Module

__all__ = ["SwiGLU"]


class SwiGLU(Module):
    """down_proj(silu(gate) * up) with [gate, up] = gate_up_proj(x) (a Linear dim -> 2 hidden_dim)."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = False, device: Any = "cpu", dtype: Any = None):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.gate_up_proj = Linear(dim, 2 * hidden_dim, bias=bias, device=device, dtype=dtype)
        self.down_proj = Linear(hidden_dim, dim, bias=bias, device=device, dtype=dtype)

    def forward(self, input: Tensor) -> Tensor:
        gate, up = F.split(self.gate_up_proj(input), self.hidden_dim, -1)
        return self.down_proj(F.silu(gate) * up)
