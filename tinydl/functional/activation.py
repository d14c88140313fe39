"""Activation functions and the (log-)softmax, each stable for large inputs, with their derivatives."""
from __future__ import annotations

import math

from ..autograd import Function, is_grad_enabled
from ..backend import get_array_module
from ..costs import elementwise
from ..tensor import Tensor
from ..kernels.activation import gelu_backward, gelu_forward, relu_backward, relu_forward
from ..kernels.softmax import softmax_backward, softmax_forward
from .elementwise import constant, erf, exp
from ._dims import normalize_dim
from .reduction import sum

__all__ = ["tanh", "sigmoid", "relu", "leaky_relu", "gelu", "silu", "softmax", "log_softmax"]


class Tanh(Function):
    """y = tanh x;  dx = gy * (1 - y^2)."""

    saved_inputs, saves_outputs = (), True
    flops = elementwise(1)

    def forward(self, x):
        return get_array_module(x).tanh(x)

    def backward(self, gy):
        y = self.output()
        return gy * (1 - y * y)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x), computed as e^x / (1 + e^x) for x < 0 so that neither branch overflows;
    dx = gy * y * (1 - y)."""

    saved_inputs, saves_outputs = (), True
    flops = elementwise(3)  # exp, add, divide

    def forward(self, x):
        xp = get_array_module(x)
        decay = xp.exp(-xp.abs(x))                # in (0, 1], never overflows
        return xp.where(x >= 0, 1 / (1 + decay), decay / (1 + decay)).astype(x.dtype, copy=False)

    def backward(self, gy):
        y = self.output()
        return gy * y * (1 - y)


class Relu(Function):
    """y = max(x, 0);  dx = gy * [x > 0].

    The plain backward multiplies the raw arrays, float by bool, in one pass; as a tinydl op (when the backward
    is itself being differentiated) the mask would first be cast to a float array of the input's size."""

    saved_inputs, saves_outputs = (), False
    flops = elementwise(1)  # a comparison

    def forward(self, x):
        y, self.mask = relu_forward(x, with_mask=self.needs_input_grad[0])
        return y

    def backward(self, gy):
        if not is_grad_enabled():
            return Tensor._from_array(relu_backward(gy.data, self.mask))
        return gy * constant(self.mask)

    def backward_flops(self, grad_outputs, grad_inputs):
        """Of the plain backward on raw arrays: one multiplication per element (the recorded one counts itself)."""
        return 0 if is_grad_enabled() else grad_outputs[0].size


class LeakyRelu(Function):
    """y = x for x > 0, slope * x otherwise;  dx = gy * (1 or slope)."""

    saved_inputs, saves_outputs = (), False

    name = "leaky_relu"
    flops = elementwise(2)  # compare, multiply

    def __init__(self, negative_slope: float):
        self.negative_slope = negative_slope

    def forward(self, x):
        xp = get_array_module(x)
        self.factor = xp.where(x > 0, 1, self.negative_slope).astype(x.dtype)
        return x * self.factor

    def backward(self, gy):
        return gy * constant(self.factor)


class Gelu(Function):
    """y = x * Phi(x) with Phi(x) = (1 + erf(x / sqrt 2)) / 2 the normal CDF;
    dx = gy * (Phi(x) + x * phi(x)) with phi(x) = e^(-x^2/2) / sqrt(2 pi).

    Forward and plain backward run on raw arrays in :mod:`tinydl.kernels.activation` (one fused CUDA kernel each
    on a GPU); the plain forward keeps dy/dx = Phi(x) + x phi(x) for the backward (erf is the costly part). A
    backward that is itself being differentiated is written with tinydl ops, so that its dependence on x is part
    of the graph.
    """

    saved_inputs, saves_outputs = (0,), False
    flops = elementwise(5)  # x / sqrt 2, erf, + 1, * 0.5, * x

    def forward(self, x):
        y, slope = gelu_forward(x)
        if any(self.needs_input_grad):
            self.slope = slope
        return y

    def backward(self, gy):
        x = self.inputs[0]
        if not is_grad_enabled():
            return Tensor._from_array(gelu_backward(x.data, gy.data, self.slope))
        cdf = 0.5 * (1 + erf(x * (1 / math.sqrt(2))))
        density = exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
        return gy * (cdf + x * density)


class Silu(Function):
    """y = x * sigmoid(x) (the "swish" of SwiGLU feed-forward layers);
    dx = gy * s (1 + x (1 - s)) with s = sigmoid(x).

    The forward keeps s for a plain backward; a backward that is itself being differentiated recomputes s with
    tinydl ops, so that its dependence on x is part of the graph.
    """

    flops = elementwise(4)  # exp, add, divide (the sigmoid), multiply

    def forward(self, x):
        logistic = Sigmoid().forward(x)
        if any(self.needs_input_grad):
            self.logistic = logistic
        return x * logistic

    def backward(self, gy):
        x = self.inputs[0]
        logistic = sigmoid(x) if is_grad_enabled() else constant(self.logistic)
        return gy * logistic * (1 + x * (1 - logistic))


class Softmax(Function):
    """y_i = e^(x_i - m) / sum_j e^(x_j - m) along ``dim`` (m = max_j x_j keeps exp from overflowing);
    dx = y * (gy - sum_j gy_j y_j). Raw-array forward and plain backward in :mod:`tinydl.kernels.softmax` (fused
    row kernels on a GPU); a backward being differentiated is written with tinydl ops."""

    saved_inputs, saves_outputs = (), True
    flops = elementwise(5)  # max, subtract, exp, sum, divide

    def __init__(self, dim: int):
        self.dim = dim

    def forward(self, x):
        return softmax_forward(x, self.dim)

    def backward(self, gy):
        y = self.output()
        if not is_grad_enabled():
            return Tensor._from_array(softmax_backward(y.data, gy.data, self.dim))
        return y * (gy - sum(gy * y, self.dim, keepdim=True))


class LogSoftmax(Function):
    """y = x - m - log sum_j e^(x_j - m) along ``dim``;  dx = gy - softmax(x) * sum_j gy_j (raw-array paths as
    for :class:`Softmax`)."""

    saved_inputs, saves_outputs = (), True

    name = "log_softmax"
    flops = elementwise(5)  # max, subtract, exp, sum, subtract the log

    def __init__(self, dim: int):
        self.dim = dim

    def forward(self, x):
        return softmax_forward(x, self.dim, log=True)

    def backward(self, gy):
        if not is_grad_enabled():
            return Tensor._from_array(softmax_backward(self.output().data, gy.data, self.dim, log=True))
        return gy - exp(self.output()) * sum(gy, self.dim, keepdim=True)


def tanh(input: Tensor) -> Tensor:
    """Hyperbolic tangent."""
    return Tanh()(input)


def sigmoid(input: Tensor) -> Tensor:
    """Logistic sigmoid 1 / (1 + e^-x)."""
    return Sigmoid()(input)


def relu(input: Tensor) -> Tensor:
    """max(x, 0); the gradient at 0 is 0, as in PyTorch."""
    return Relu()(input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, negative_slope * x otherwise."""
    return LeakyRelu(negative_slope)(input)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit x * Phi(x); ``approximate="tanh"`` uses
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as PyTorch does."""
    if approximate == "none":
        return Gelu()(input)
    if approximate == "tanh":
        inner = math.sqrt(2 / math.pi) * (input + 0.044715 * input * input * input)
        return 0.5 * input * (1 + tanh(inner))
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(input: Tensor) -> Tensor:
    """Sigmoid-weighted linear unit x * sigmoid(x) (also called swish)."""
    return Silu()(input)


def softmax(input: Tensor, dim: int) -> Tensor:
    """Softmax along ``dim`` (rows of -inf give NaN, as in PyTorch; attention masks handle them itself)."""
    return Softmax(normalize_dim("softmax", dim, input.ndim))(input)


def log_softmax(input: Tensor, dim: int) -> Tensor:
    """log(softmax(x)) along ``dim``, computed without forming the softmax (stable for logits of any size)."""
    return LogSoftmax(normalize_dim("log_softmax", dim, input.ndim))(input)
