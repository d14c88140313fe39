"""Batch, layer and RMS normalisation: standardise over some axes, then scale and shift per feature.

Both share one kernel, :class:`Normalize`: x_hat = (x - mean) / sqrt(var + eps) over a set of axes (the batch and
spatial axes for batch_norm, the trailing ``normalized_shape`` axes for layer_norm); the affine part
``x_hat * weight + bias`` is plain broadcasting arithmetic. rms_norm (Llama's) only rescales, by the root mean
square of the last axis, with its own small kernel :class:`RootMeanSquareNormalize`.
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence

from .. import versions
from ..autograd import Function, is_grad_enabled
from ..backend import get_array_module
from ..kernels.normalization import layer_norm_backward, layer_norm_forward
from ..tensor import Tensor
from ._device import on_the_inputs_device
from .elementwise import constant, sqrt
from .reduction import mean, var

__all__ = ["batch_norm", "layer_norm", "rms_norm"]


class Normalize(Function):
    """x_hat = (x - mean) / sqrt(var + eps) over ``axes``, with the mean refined once and the biased variance
    computed in a second pass (so that large, nearly equal values keep their spread, and a constant input gives
    x_hat = 0, never 0/0).

    Backward, with means over the same axes and s = 1 / sqrt(var + eps):
        dx = s (g - mean(g) - x_hat mean(g x_hat)).
    When the backward is itself being differentiated it is written with tinydl ops on x_hat (the output) and s,
    s recomputed from x, so that its dependence on x is part of the graph. Otherwise (ordinary training) it runs
    on raw arrays. Over the trailing axes (layer_norm), forward and backward are the row kernels of
    :mod:`tinydl.kernels.normalization` (blocks of rows in the cache on a CPU, one CUDA block per row on a GPU);
    over other axes (batch_norm) the backward works in one scratch array of x's size: three passes (g x_hat, then
    the combination in place, then the scaling) instead of the seven temporaries of the op-by-op form.
    """

    saved_inputs, saves_outputs = (0,), True

    def flops(self, inputs, outputs):
        """7 per element (two means, centring twice, square, the product by 1/std), 4 per statistic."""
        return 7 * inputs[0].size + 4 * self.mean.size

    def __init__(self, axes: tuple[int, ...], eps: float):
        self.axes, self.eps = axes, eps

    def forward(self, x):
        if self._over_trailing_axes(x):  # layer_norm: row kernels (tinydl.kernels.normalization)
            x_hat, self.mean, self.var, self.inv_std = layer_norm_forward(x, len(self.axes), self.eps)
            return x_hat
        xp = get_array_module(x)
        self.mean = x.mean(axis=self.axes, keepdims=True)
        centred = x - self.mean
        # refine the mean once by the mean of the residuals: this removes the rounding error of the first pass,
        # which for a float32 constant such as 1e4 + 0.1 is one ulp (1e-3) and would otherwise be normalised up
        residual = centred.mean(axis=self.axes, keepdims=True)
        self.mean += residual
        centred -= residual
        self.var = (centred * centred).mean(axis=self.axes, keepdims=True)
        self.inv_std = 1 / xp.sqrt(self.var + self.eps)
        centred *= self.inv_std
        return centred

    def _over_trailing_axes(self, x: Any) -> bool:
        """The row kernels apply to a non-empty normalisation over the trailing axes (layer_norm)."""
        return x.size > 0 and self.axes == tuple(range(x.ndim - len(self.axes), x.ndim))

    def backward(self, g):
        x_hat = self.output()
        if not is_grad_enabled() and self._over_trailing_axes(x_hat.data) and g.shape == x_hat.shape:
            x = self.inputs[0].data
            return Tensor._from_array(layer_norm_backward(x, self.mean, self.inv_std, g.data, len(self.axes))[0])
        if not is_grad_enabled():
            return constant(self._plain_backward(g.data))
        mean_g = mean(g, self.axes, keepdim=True)
        mean_g_x_hat = mean(g * x_hat, self.axes, keepdim=True)
        return (g - mean_g - x_hat * mean_g_x_hat) * self._inv_std()

    def _plain_backward(self, g: Any) -> Any:
        """dx = s (g - mean(g) - x_hat mean(g x_hat)) on arrays, in one scratch array."""
        x_hat = self.output().data
        mean_g = g.mean(axis=self.axes, keepdims=True)
        dx = g * x_hat
        mean_g_x_hat = dx.mean(axis=self.axes, keepdims=True)
        get_array_module(g).multiply(x_hat, mean_g_x_hat, out=dx)   # dx = x_hat mean(g x_hat)
        dx -= g
        dx += mean_g
        dx *= -self.inv_std                                          # s (g - mean(g) - x_hat mean(g x_hat))
        return dx

    def _inv_std(self) -> Tensor:
        if not is_grad_enabled():
            return constant(self.inv_std)
        variance = var(self.inputs[0], self.axes, keepdim=True, correction=0)
        return 1 / sqrt(variance + self.eps)


class LayerNorm(Function):
    """y = x_hat weight + bias, x_hat = :class:`Normalize` over the trailing axes, in one op: the row kernels of
    :mod:`tinydl.kernels.normalization` apply the affine part while a block of rows is in the cache.

    Backward, with g_hat = g weight, s = 1 / sqrt(var + eps), means over the normalised axes and sums over the
    others: dx = s (g_hat - mean(g_hat) - x_hat mean(g_hat x_hat)), dweight = sum(g x_hat), dbias = sum(g).
    Only the row statistics are kept: the backward recomputes x_hat = (x - mean) s from x (which the graph holds
    anyway) block by block in the cache, where the unfused form keeps x_hat, an array of x's size. A backward
    that is itself being differentiated recomputes x_hat from x with a :class:`Normalize` and uses its
    differentiable backward, so that the dependence on x and weight is part of the graph.
    """

    name = "layer_norm"
    saved_inputs, saves_outputs = (0, 1), False

    def flops(self, inputs, outputs):
        """Normalize's 7 per element and 4 per statistic, and 2 per element for the affine part."""
        return 9 * inputs[0].size + 4 * (inputs[0].size // max(inputs[1].size, 1))

    def __init__(self, axes: tuple[int, ...], eps: float):
        self.axes, self.eps = axes, eps

    def forward(self, x, weight, bias):
        y, mean, _, inv_std = layer_norm_forward(x, len(self.axes), self.eps, weight, bias)
        if any(self.needs_input_grad):
            self.mean, self.inv_std = mean, inv_std
        return y

    def backward(self, g):
        x, weight, _ = self.inputs
        rows = tuple(range(x.ndim - len(self.axes)))
        if not is_grad_enabled():
            grads = layer_norm_backward(x.data, self.mean, self.inv_std, g.data, len(self.axes), weight.data)
            return tuple(constant(grad) for grad in grads)
        normalize = Normalize(self.axes, self.eps)
        x_hat = normalize(x)                        # recorded (so that normalize.backward can run) when x needs one
        dx = normalize.backward(g * weight) if self.needs_input_grad[0] else None
        return dx, (g * x_hat).sum(rows), g.sum(rows)


class RootMeanSquareNormalize(Function):
    """y = x * r with r = 1 / sqrt(mean(x^2) + eps) over the last axis (no centring, no bias).

    Backward, with means over the last axis: dx = r (g - y mean(g y)). It is written with tinydl ops on y (the
    output) and r; when the backward is itself being differentiated, r is recomputed from x with tinydl ops.
    """

    name = "rms_norm"

    def flops(self, inputs, outputs):
        """3 per element (square, sum, the product by r), 3 per row (divide, + eps, 1 / sqrt)."""
        return 3 * inputs[0].size + 3 * self.inv_rms.size

    def __init__(self, eps: float):
        self.eps = eps

    def forward(self, x):
        xp = get_array_module(x)
        mean_square = xp.mean(x * x, axis=-1, keepdims=True)
        self.inv_rms = 1 / xp.sqrt(mean_square + x.dtype.type(self.eps))
        return x * self.inv_rms

    def backward(self, g):
        y = self.output()
        return (g - y * mean(g * y, -1, keepdim=True)) * self._inv_rms()

    def _inv_rms(self) -> Tensor:
        if not is_grad_enabled():
            return constant(self.inv_rms)
        x = self.inputs[0]
        return 1 / sqrt(mean(x * x, -1, keepdim=True) + self.eps)


def _affine(x_hat: Tensor, weight: Tensor | None, bias: Tensor | None, shape: Sequence[int]) -> Tensor:
    """x_hat * weight + bias, with weight and bias reshaped to ``shape`` to broadcast against x_hat."""
    result = x_hat if weight is None else x_hat * weight.reshape(shape)
    return result if bias is None else result + bias.reshape(shape)


def _check_parameter(op: str, name: str, value: Any, shape: tuple[int, ...], input: Tensor) -> None:
    if value is None:
        return
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(value).__name__}")
    if tuple(value.shape) != shape:
        raise ValueError(f"{op}: {name} must have shape {shape} for an input of shape {tuple(input.shape)}, "
                         f"got {tuple(value.shape)}")
    if value.dtype != input.dtype:
        raise TypeError(f"{op}: {name} has dtype {value.dtype} but the input has {input.dtype}")
    if value.device != input.device:
        raise RuntimeError(f"{op}: {name} is on {value.device} but the input is on {input.device}")


def _check_input(op: str, input: Tensor, min_dims: int) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected the input to be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point input, got dtype {input.dtype}")
    if input.ndim < min_dims:
        raise ValueError(f"{op}: expected an input of at least {min_dims} dimensions, got shape "
                         f"{tuple(input.shape)}")


@on_the_inputs_device
def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
               bias: Tensor | None = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Batch normalisation of ``input`` (N, C, ...) per channel C.

    Training: statistics of the batch (over N and the spatial axes, biased variance), and in place
    running_mean <- (1 - momentum) running_mean + momentum mean, running_var likewise with the unbiased
    variance (PyTorch's rule). Evaluation: the running statistics. Then y = x_hat * weight + bias per channel.
    """
    op = "batch_norm"
    _check_input(op, input, 2)
    channels = input.shape[1]
    for name, value in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                        ("bias", bias)):
        _check_parameter(op, name, value, (channels,), input)
    shape = (1, channels) + (1,) * (input.ndim - 2)
    if training:
        axes = (0,) + tuple(range(2, input.ndim))
        count = input.size // max(channels, 1)
        if count <= 1:
            raise ValueError(f"{op}: expected more than 1 value per channel when training, got input of shape "
                             f"{tuple(input.shape)}")
        normalize = Normalize(axes, eps)
        x_hat = normalize(input)
        _update_running(running_mean, normalize.mean, momentum)
        _update_running(running_var, normalize.var * (count / (count - 1)), momentum)
    else:
        if running_mean is None or running_var is None:
            raise ValueError(f"{op}: running_mean and running_var are required when training=False")
        inv_std = 1 / get_array_module(input.data).sqrt(running_var.data + eps)
        x_hat = (input - constant(running_mean.data.reshape(shape))) * constant(inv_std.reshape(shape))
    return _affine(x_hat, weight, bias, shape)


def _update_running(running: Tensor | None, batch_statistic: Any, momentum: float) -> None:
    """running <- (1 - momentum) running + momentum batch_statistic, in place, outside the graph."""
    if running is not None:
        running.data[...] = (1 - momentum) * running.data + momentum * batch_statistic.reshape(running.shape)
        versions.bump(running)


def layer_norm(input: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Layer normalisation over the trailing ``normalized_shape`` dimensions of ``input``:
    y = (x - mean) / sqrt(var + eps) * weight + bias, with weight and bias of shape ``normalized_shape``."""
    op = "layer_norm"
    normalized = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    normalized = tuple(int(size) for size in normalized)
    _check_input(op, input, len(normalized))
    if not normalized or tuple(input.shape[input.ndim - len(normalized):]) != normalized:
        raise ValueError(f"{op}: normalized_shape {normalized} must be the trailing dimensions of the input, "
                         f"whose shape is {tuple(input.shape)}")
    _check_parameter(op, "weight", weight, normalized, input)
    _check_parameter(op, "bias", bias, normalized, input)
    axes = tuple(range(input.ndim - len(normalized), input.ndim))
    if weight is not None and bias is not None and input.size:
        return LayerNorm(axes, eps)(input, weight, bias)
    return _affine(Normalize(axes, eps)(input), weight, bias, normalized)


def rms_norm(input: Tensor, weight: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """Root-mean-square normalisation over the last dimension (Zhang and Sennrich, 2019; Llama's norm):
    y = x / sqrt(mean(x^2) + eps) * weight, with ``weight`` of shape (features,) or None."""
    op = "rms_norm"
    _check_input(op, input, 1)
    _check_parameter(op, "weight", weight, (input.shape[-1],), input)
    normalized = RootMeanSquareNormalize(float(eps))(input)
    return normalized if weight is None else normalized * weight
