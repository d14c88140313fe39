"""Matrix products: ``matmul`` (batched, broadcasting, with PyTorch's 1-D rules) and the affine map ``linear``."""
from __future__ import annotations

from typing import Any

from ..autograd import Function
from ..tensor import Tensor
from ._operands import operands

__all__ = ["matmul", "linear"]


class MatMul(Function):
    """Y = A @ B;  dA = gY @ B^T,  dB = A^T @ gY (batch dimensions broadcast; the engine sums them back).

    A 1-D A is treated as a row vector (1, k) and a 1-D B as a column vector (k, 1); the added axis is removed
    from the result, and put back into the gradient before the matrix products.
    """

    saved_inputs, saves_outputs = None, False

    def flops(self, inputs, outputs):
        """2 K per output element (K multiplications and K additions)."""
        return 2 * outputs[0].size * inputs[0].shape[-1]

    def forward(self, a, b):
        return a @ b

    def backward(self, gy):
        a, b = self.inputs
        if a.ndim == 1 and b.ndim == 1:
            return gy * b, gy * a
        a2 = a.unsqueeze(0) if a.ndim == 1 else a
        b2 = b.unsqueeze(-1) if b.ndim == 1 else b
        if a.ndim == 1:
            gy = gy.unsqueeze(-2)
        if b.ndim == 1:
            gy = gy.unsqueeze(-1)
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = gy @ b2.mT
            if a.ndim == 1:
                ga = ga.squeeze(-2)
        if self.needs_input_grad[1]:
            gb = a2.mT @ gy
            if b.ndim == 1:
                gb = gb.squeeze(-1)
        return ga, gb


class Linear(Function):
    """y = x W^T + b for x of shape (..., in), W (out, in), b (out,);
    dx = gy W,  dW = gy^T x (summed over all leading axes),  db = gy summed over all leading axes.

    The leading axes are flattened into one, so each product is a single 2-D GEMM: NumPy's matmul of a stacked
    (B, M, K) array would call the BLAS once per matrix, which is many times slower with several threads.
    """

    saved_inputs, saves_outputs = (0, 1), False

    def flops(self, inputs, outputs):
        """2 * in per output element, plus the bias addition."""
        return outputs[0].size * (2 * inputs[1].shape[1] + (len(inputs) == 3))

    def forward(self, x, weight, bias=None):
        y = x.reshape(-1, x.shape[-1]) @ weight.T
        if bias is not None:
            y += bias
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, gy):
        x, weight = self.inputs[0], self.inputs[1]
        flat_gy = gy.reshape(-1, gy.shape[-1])
        gx = (flat_gy @ weight).reshape(x.shape) if self.needs_input_grad[0] else None
        gw = flat_gy.mT @ x.reshape(-1, x.shape[-1]) if self.needs_input_grad[1] else None
        if len(self.inputs) == 2:
            return gx, gw
        gb = flat_gy.sum(0) if self.needs_input_grad[2] else None
        return gx, gw, gb


def matmul(input: Any, other: Any) -> Tensor:
    """Matrix product with NumPy/PyTorch semantics: batched and broadcasting over leading axes; 1-D operands are
    vectors (1-D @ 1-D is a dot product)."""
    a, b = operands("matmul", input, other)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least one dimension, got shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    inner_a = a.shape[-1]
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if inner_a != inner_b:
        raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
                         f"({inner_a} != {inner_b})")
    return MatMul()(a, b)


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """The affine map x W^T + b, as ``torch.nn.functional.linear`` (W has shape (out_features, in_features))."""
    tensors = operands("linear", input, weight, *(() if bias is None else (bias,)))
    if weight.ndim != 2 or input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {tuple(input.shape)} does not fit weight of shape "
                         f"{tuple(weight.shape)} (expected input (..., {weight.shape[-1] if weight.ndim else '?'}))")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"linear: bias of shape {tuple(bias.shape)} does not fit weight of shape "
                         f"{tuple(weight.shape)} (expected ({weight.shape[0]},))")
    return Linear()(*tensors)
