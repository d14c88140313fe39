"""Reductions (sum, mean, var, max, min, logsumexp, argmax) and the two broadcasting ops they pair with.

``broadcast_to`` and ``sum_to`` are each other's derivative: broadcasting copies a value along new or size-1
dimensions, so its gradient sums those copies back; summing spreads one gradient to every summed element.
The autograd engine uses ``sum_to`` to undo the broadcasting of binary ops.
"""
from __future__ import annotations

import builtins
from collections import namedtuple
from typing import Any, Sequence

from .. import autograd
from ..autograd import Function
from ..backend import get_array_module
from ..costs import moves_only, reduces
from ..tensor import Tensor
from ._device import on_the_inputs_device
from ._dims import normalize_dim, normalize_dims
from .elementwise import constant, exp

__all__ = ["sum", "mean", "var", "max", "min", "logsumexp", "argmax", "argmin", "broadcast_to", "sum_to"]

ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


def _kept_shape(shape: Sequence[int], dims: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` with the reduced dimensions kept as size 1."""
    return tuple(1 if axis in dims else size for axis, size in enumerate(shape))


class BroadcastTo(Function):
    """y = x repeated along broadcast dimensions;  dx = sum of gy over them (done by the engine's sum_to)."""

    saved_inputs, saves_outputs = (), False
    returns_view = True

    name = "broadcast_to"
    flops = moves_only

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def forward(self, x):
        return get_array_module(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return gy


class SumTo(Function):
    """y = x summed over the dimensions that broadcasting to x.shape would have added or stretched;
    dx = gy broadcast back to x.shape."""

    saved_inputs, saves_outputs = (), False

    name = "sum_to"
    flops = reduces

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def forward(self, x):
        self.input_shape = x.shape
        lead = x.ndim - len(self.shape)
        axes = tuple(range(lead)) + tuple(lead + i for i, size in enumerate(self.shape)
                                          if size == 1 and x.shape[lead + i] != 1)
        summed = x.sum(axis=axes, keepdims=True) if axes else x
        return summed.reshape(self.shape)

    def backward(self, gy):
        return broadcast_to(gy, self.input_shape)


class Sum(Function):
    """y = sum of x over ``dims``;  dx = gy broadcast back over them."""

    saved_inputs, saves_outputs = (), False
    flops = reduces

    def __init__(self, dims: tuple[int, ...], keepdim: bool):
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x):
        self.input_shape = x.shape
        return x.sum(axis=self.dims, keepdims=self.keepdim)

    def backward(self, gy):
        if not self.keepdim:
            gy = gy.reshape(_kept_shape(self.input_shape, self.dims))
        return broadcast_to(gy, self.input_shape)


class Extremum(Function):
    """y = max (or min) of x along ``dim`` (or over everything when dim is None).

    Along a dim, the gradient goes to the position of the first extremal element (the returned index), as in
    PyTorch; over everything it is shared equally between tied elements.
    """

    saved_inputs, saves_outputs = (), False
    flops = reduces

    def __init__(self, kind: str, dim: int | None, keepdim: bool):
        self.kind, self.dim, self.keepdim = kind, dim, keepdim

    @property
    def name(self) -> str:
        return self.kind

    def forward(self, x):
        xp = get_array_module(x)
        if x.size == 0:
            raise ValueError(f"{self.kind}: expected a non-empty tensor, got shape {x.shape}")
        if self.dim is None:
            value = x.max() if self.kind == "max" else x.min()
            if any(self.needs_input_grad):
                ties = x == value
                self.weights = ties / ties.sum(dtype=x.dtype)
            return xp.asarray(value)
        pick = xp.argmax if self.kind == "max" else xp.argmin
        self.indices = xp.expand_dims(pick(x, axis=self.dim), self.dim)
        values = xp.take_along_axis(x, self.indices, axis=self.dim)
        if any(self.needs_input_grad):
            positions = xp.arange(x.shape[self.dim]).reshape((-1,) + (1,) * (x.ndim - self.dim - 1))
            self.weights = (positions == self.indices).astype(x.dtype)
        return values if self.keepdim else values.squeeze(self.dim)

    def backward(self, gy):
        if self.dim is not None and not self.keepdim:
            gy = gy.unsqueeze(self.dim)
        return gy * constant(self.weights)


class LogSumExp(Function):
    """y = m + log sum_i e^(x_i - m) over ``dims`` (m = the max, so nothing overflows; a row of -inf gives -inf);
    dx = gy * softmax(x) = gy * e^(x - m) / sum e^(x - m) (m: the max again, so that it is exact in float32)."""

    saved_inputs, saves_outputs = (0,), False

    def flops(self, inputs, outputs):
        """max, subtract, exp, sum over n inputs; log and add per result."""
        return 4 * inputs[0].size + 2 * outputs[0].size

    def __init__(self, dims: tuple[int, ...], keepdim: bool):
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x):
        xp = get_array_module(x)
        self.input_shape = x.shape
        peak = x.max(axis=self.dims, keepdims=True)
        peak = xp.where(xp.isfinite(peak), peak, 0)
        self.peak = peak
        result = xp.log(xp.exp(x - peak).sum(axis=self.dims, keepdims=True)) + peak
        return result if self.keepdim else result.reshape([s for i, s in enumerate(x.shape) if i not in self.dims])

    def backward(self, gy):
        x = self.inputs[0]
        if not self.keepdim:
            gy = gy.reshape(_kept_shape(self.input_shape, self.dims))
        # softmax as e^(x - m) / sum e^(x - m): exact for any constant m, whereas e^(x - y) inherits the rounding
        # error of y, which is large in float32 when |y| is
        shifted = exp(x - constant(self.peak))
        return gy * shifted / sum(shifted, self.dims, keepdim=True)


# ------------------------------------------------------------------------------------------ public functions
def broadcast_to(input: Tensor, shape: Sequence[int]) -> Tensor:
    """``input`` broadcast to ``shape`` (NumPy rules)."""
    shape = tuple(shape)
    if input.shape == shape:
        return input
    return BroadcastTo(shape)(input)


def sum_to(input: Tensor, shape: Sequence[int]) -> Tensor:
    """Sum ``input`` down to ``shape``, the inverse of broadcasting ``shape`` to ``input.shape``."""
    shape = tuple(shape)
    if input.shape == shape:
        return input
    return SumTo(shape)(input)


def sum(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Sum over ``dim`` (an int, a tuple of ints, or None for all)."""
    return Sum(normalize_dims("sum", dim, input.ndim), keepdim)(input)


def mean(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Arithmetic mean over ``dim``; floating tensors only (as in PyTorch)."""
    if input.dtype.kind not in "fc":
        raise TypeError(f"mean: expected a floating-point tensor, got {input.dtype}; convert it with .float()")
    dims = normalize_dims("mean", dim, input.ndim)
    count = 1
    for axis in dims:
        count *= input.shape[axis]
    return Sum(dims, keepdim)(input) * (1.0 / count if count else float("nan"))


def var(input: Tensor, dim: Any = None, keepdim: bool = False, correction: int = 1,
        unbiased: bool | None = None) -> Tensor:
    """Variance sum (x - mean)^2 / (N - correction) over ``dim``, computed in two passes (stable when the values
    are large and nearly equal). ``unbiased=False`` is ``correction=0``."""
    if unbiased is not None:
        correction = 1 if unbiased else 0
    dims = normalize_dims("var", dim, input.ndim)
    count = 1
    for axis in dims:
        count *= input.shape[axis]
    centred = input - mean(input, dims, keepdim=True)
    return sum(centred * centred, dims, keepdim) / builtins.max(count - correction, 0)


def max(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
    """The largest element; with ``dim``, a (values, indices) pair along that dimension, as in PyTorch."""
    return _extremum("max", input, dim, keepdim)


def min(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
    """The smallest element; with ``dim``, a (values, indices) pair along that dimension, as in PyTorch."""
    return _extremum("min", input, dim, keepdim)


def _extremum(kind: str, input: Tensor, dim: int | None, keepdim: bool) -> Any:
    if dim is None:
        return Extremum(kind, None, False)(input)
    function = Extremum(kind, normalize_dim(kind, dim, input.ndim), keepdim)
    values = function(input)
    indices = function.indices if keepdim else function.indices.squeeze(function.dim)
    return ValuesIndices(values, constant(indices))


def logsumexp(input: Tensor, dim: Any, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x))) over ``dim``, without overflow."""
    return LogSumExp(normalize_dims("logsumexp", dim, input.ndim), keepdim)(input)


@on_the_inputs_device
def argmax(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the (first) largest element, over the flattened tensor or along ``dim`` (int64, no gradient)."""
    return _arg("argmax", input, dim, keepdim)


@on_the_inputs_device
def argmin(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the (first) smallest element, over the flattened tensor or along ``dim`` (int64, no gradient)."""
    return _arg("argmin", input, dim, keepdim)


def _arg(op: str, input: Tensor, dim: int | None, keepdim: bool) -> Tensor:
    xp = get_array_module(input.data)
    if input.size == 0:
        raise ValueError(f"{op}: expected a non-empty tensor, got shape {tuple(input.shape)}")
    pick = getattr(xp, op)
    if dim is None:
        result = pick(input.data)
        return constant(xp.asarray(result, dtype=xp.int64).reshape((1,) * input.ndim if keepdim else ()))
    axis = normalize_dim(op, dim, input.ndim)
    result = pick(input.data, axis=axis).astype(xp.int64)
    return constant(xp.expand_dims(result, axis) if keepdim else result)


autograd._sum_to = sum_to
