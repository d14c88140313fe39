"""``SwiGLU``: the gated feed-forward block of Llama-family Transformers (Shazeer, 2020).

    ffn(x) = down_proj( silu(gate_proj(x)) * up_proj(x) )

gate_proj and up_proj map the model width d to the hidden width h, down_proj maps h back to d; no biases.
The gate's silu(z) = z * sigmoid(z) decides, feature by feature, how much of the "up" projection passes.
"""
from __future__ import annotations

from typing import Any

from .. import functional as F
from ..tensor import Tensor
from .linear import Linear
from .module import Module

__all__ = ["SwiGLU"]


class SwiGLU(Module):
    """down_proj(silu(gate_proj(x)) * up_proj(x)); submodule names as in Hugging Face's LlamaMLP."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = False, device: Any = "cpu", dtype: Any = None):
        super().__init__()
        self.gate_proj = Linear(dim, hidden_dim, bias=bias, device=device, dtype=dtype)
        self.up_proj = Linear(dim, hidden_dim, bias=bias, device=device, dtype=dtype)
        self.down_proj = Linear(hidden_dim, dim, bias=bias, device=device, dtype=dtype)

    def forward(self, input: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(input)) * self.up_proj(input))
