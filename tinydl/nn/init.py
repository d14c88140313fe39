"""Initialisation of parameters, in place, with PyTorch's rules and names.

Random draws come from ``tinydl.default_generator(device)``, so ``tinydl.manual_seed(s)`` makes every layer's
initial weights reproducible. Each function fills ``tensor.data`` in place (keeping its dtype, device and memory),
bumps the tensor's version (:mod:`tinydl.versions`) and returns ``tensor``.

Fan-in and fan-out of a weight of shape (out, in, *kernel): fan_in = in * prod(kernel), fan_out = out *
prod(kernel). The scaled initialisations keep the variance of activations (Xavier/Glorot, for tanh-like units)
or of ReLU activations (Kaiming/He) roughly constant from layer to layer:

* ``xavier_uniform_``: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out));
* ``xavier_normal_``: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out));
* ``kaiming_uniform_``: U(-b, b), b = gain * sqrt(3 / fan), fan = fan_in or fan_out (``mode``);
* ``kaiming_normal_``: N(0, std^2), std = gain / sqrt(fan).
"""
from __future__ import annotations

import math
from typing import Any

import numpy

from .. import versions
from ..creation import default_generator
from ..tensor import Tensor

__all__ = ["calculate_gain", "uniform_", "normal_", "constant_", "zeros_", "ones_", "xavier_uniform_",
           "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"]

_LINEAR_GAIN = ("linear", "identity", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor by which a nonlinearity shrinks the standard deviation of its input, to be compensated:
    1 for linear maps and sigmoid, 5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + slope^2)) for leaky_relu
    (slope ``param``, default 0.01), 3/4 for selu."""
    if nonlinearity in _LINEAR_GAIN:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"calculate_gain: negative slope {param!r} is not a number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of shape (out, in, *kernel); needs at least 2 dimensions."""
    if tensor.ndim < 2:
        raise ValueError(f"init: fan in and fan out need a tensor of at least 2 dimensions, got shape "
                         f"{tuple(tensor.shape)}")
    receptive_field = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _check_float(function: str, tensor: Tensor) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{function}: expected a Tensor, got {type(tensor).__name__}")
    if tensor.dtype.kind != "f":
        raise TypeError(f"{function}: expected a floating-point tensor, got dtype {tensor.dtype}")


def _fill(tensor: Tensor, values: Any) -> None:
    tensor.data[...] = values
    versions.bump(tensor)


def _draw_dtype(tensor: Tensor) -> numpy.dtype:
    """The dtype to draw in: the generators produce float32 and float64; narrower floats are drawn in float32."""
    return tensor.dtype if tensor.dtype == numpy.float64 else numpy.dtype(numpy.float32)


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with samples of U(a, b)."""
    _check_float("uniform_", tensor)
    if not a <= b:
        raise ValueError(f"uniform_: the lower bound a={a} exceeds the upper bound b={b}")
    draw = default_generator(tensor.device).random(tensor.shape, dtype=_draw_dtype(tensor))
    draw *= b - a
    draw += a
    _fill(tensor, draw)
    return tensor


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with samples of N(mean, std^2)."""
    _check_float("normal_", tensor)
    if std < 0:
        raise ValueError(f"normal_: std must be non-negative, got {std}")
    draw = default_generator(tensor.device).standard_normal(tensor.shape, dtype=_draw_dtype(tensor))
    draw *= std
    draw += mean
    _fill(tensor, draw)
    return tensor


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``."""
    _check_float("constant_", tensor)
    _fill(tensor, val)
    return tensor


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    if tensor.size == 0:  # nothing to fill, and no fan to divide by
        return tensor
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    if tensor.size == 0:  # nothing to fill, and no fan to divide by
        return tensor
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu") -> Tensor:
    """U(-b, b) with b = gain * sqrt(3 / fan) (He et al., 2015); ``a`` is the leaky_relu slope of the gain.

    With a = sqrt(5), PyTorch's default for Linear and Conv weights, gain = sqrt(1/3) and b = 1 / sqrt(fan_in).
    """
    if tensor.size == 0:  # nothing to fill, and no fan to divide by
        return tensor
    gain = calculate_gain(nonlinearity, a)
    bound = gain * math.sqrt(3.0 / _calculate_correct_fan(tensor, mode))
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu") -> Tensor:
    """N(0, std^2) with std = gain / sqrt(fan)."""
    if tensor.size == 0:  # nothing to fill, and no fan to divide by
        return tensor
    gain = calculate_gain(nonlinearity, a)
    return normal_(tensor, 0.0, gain / math.sqrt(_calculate_correct_fan(tensor, mode)))


def uniform_fan_in_(tensor: Tensor, fan_in: int) -> Tensor:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for the bias of Linear and Conv layers."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return uniform_(tensor, -bound, bound)
