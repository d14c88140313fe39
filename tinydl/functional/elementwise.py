"""Elementwise arithmetic and math functions, with their derivatives.

Binary ops broadcast their operands (NumPy rules); the engine sums each gradient back to its input's shape, so
every backward below is written as if no broadcasting had happened.
"""
from __future__ import annotations

import math
from typing import Any

import numpy

from ..autograd import Function
from ..backend import device, device_of, device_scope, get_array_module, is_array
from ..costs import elementwise, moves_only
from ..kernels.special import erf as erf_kernel
from ..tensor import Tensor
from ._device import on_the_inputs_device
from ._operands import check_broadcast, operands, require_tensor

__all__ = ["add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "abs", "maximum", "minimum", "where",
           "clamp", "erf", "sign", "eq", "ne", "lt", "le", "gt", "ge", "logical_not", "logical_and", "logical_or",
           "clone", "cast", "to_device"]


def constant(array: Any) -> Tensor:
    """A Tensor outside the graph (masks, signs): its derivative is zero, so it never requires grad."""
    return Tensor._from_array(array)


class Add(Function):
    """y = a + b;  da = gy, db = gy."""

    saved_inputs, saves_outputs = (), False
    flops = elementwise(1)

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        return gy, gy


class Sub(Function):
    """y = a - b;  da = gy, db = -gy."""

    saved_inputs, saves_outputs = (), False
    flops = elementwise(1)

    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        return gy, (-gy if self.needs_input_grad[1] else None)


class Mul(Function):
    """y = a * b;  da = gy * b, db = gy * a."""

    saved_inputs, saves_outputs = None, False
    flops = elementwise(1)

    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        return (gy * b if self.needs_input_grad[0] else None,
                gy * a if self.needs_input_grad[1] else None)


class Div(Function):
    """y = a / b;  da = gy / b, db = -gy * a / b^2 = -gy * (a / b) / b (a / b recomputed rather than read from the
    output, so that backward reads only the inputs, and an in-place change of the output does not concern it)."""

    saved_inputs, saves_outputs = None, False

    flops = elementwise(1)

    def forward(self, a, b):
        return a / b

    def backward(self, gy):
        a, b = self.inputs
        ga = gy / b if self.needs_input_grad[0] else None
        gb = -(gy * (a / b)) / b if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    """y = -x;  dx = -gy."""

    saved_inputs, saves_outputs = (), False
    flops = elementwise(1)

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class PowScalar(Function):
    """y = x^p for a constant p;  dx = gy * p * x^(p-1)."""

    saved_inputs, saves_outputs = (0,), False

    name = "pow"

    flops = elementwise(1)

    def __init__(self, exponent: float):
        self.exponent = exponent

    def forward(self, x):
        return x ** self.exponent

    def backward(self, gy):
        x, = self.inputs
        p = self.exponent
        return gy * p * x ** (p - 1) if p != 2 else gy * 2 * x


class Pow(Function):
    """y = a^b for tensors;  da = gy * b * a^(b-1),  db = gy * y * log(a)."""

    flops = elementwise(1)

    def forward(self, a, b):
        return a ** b

    def backward(self, gy):
        a, b = self.inputs
        ga = gy * b * a ** (b - 1) if self.needs_input_grad[0] else None
        gb = gy * self.output() * log(a) if self.needs_input_grad[1] else None
        return ga, gb


class Exp(Function):
    """y = e^x;  dx = gy * y."""

    saved_inputs, saves_outputs = (), True
    flops = elementwise(1)

    def forward(self, x):
        return get_array_module(x).exp(x)

    def backward(self, gy):
        return gy * self.output()


class Log(Function):
    """y = ln x;  dx = gy / x."""

    saved_inputs, saves_outputs = (0,), False
    flops = elementwise(1)

    def forward(self, x):
        return get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.inputs[0]


class Sqrt(Function):
    """y = sqrt(x);  dx = gy / (2 y)."""

    saved_inputs, saves_outputs = (), True
    flops = elementwise(1)

    def forward(self, x):
        return get_array_module(x).sqrt(x)

    def backward(self, gy):
        return gy / (2 * self.output())


class Abs(Function):
    """y = |x|;  dx = gy * sign(x) (0 at x = 0, as in PyTorch)."""

    saved_inputs, saves_outputs = (0,), False
    flops = elementwise(1)

    def forward(self, x):
        return get_array_module(x).abs(x)

    def backward(self, gy):
        return gy * sign(self.inputs[0])


class Erf(Function):
    """y = erf(x) = 2/sqrt(pi) * integral_0^x e^(-t^2) dt;  dx = gy * 2/sqrt(pi) * e^(-x^2)."""

    saved_inputs, saves_outputs = (0,), False
    flops = elementwise(1)

    def forward(self, x):
        return erf_kernel(x)

    def backward(self, gy):
        x = self.inputs[0]
        return gy * (2.0 / math.sqrt(math.pi)) * exp(-(x * x))


class Where(Function):
    """y = a where cond else b;  da = gy where cond else 0,  db = gy where not cond else 0."""

    saved_inputs, saves_outputs = (), False
    flops = moves_only

    def __init__(self, condition: Any):
        self.condition = condition

    def forward(self, a, b):
        return get_array_module(a).where(self.condition, a, b)

    def backward(self, gy):
        zero = constant(get_array_module(gy.data).zeros((), dtype=gy.dtype))
        ga = where(self.condition, gy, zero) if self.needs_input_grad[0] else None
        gb = where(self.condition, zero, gy) if self.needs_input_grad[1] else None
        return ga, gb


class Cast(Function):
    """y = x converted to another dtype;  dx = gy converted back."""

    saved_inputs, saves_outputs = (), False
    flops = moves_only

    def __init__(self, dtype: numpy.dtype):
        self.dtype = dtype

    def forward(self, x):
        self.source_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return cast(gy, self.source_dtype)


class ToDevice(Function):
    """y = x copied to another device;  dx = gy copied back."""

    saved_inputs, saves_outputs = (), False

    name = "to"

    flops = moves_only

    def __init__(self, target: Any):
        self.target = target

    def forward(self, x):
        from ..backend import device_of, to_device as move
        self.source = device_of(x)
        return move(x, self.target)

    def backward(self, gy):
        return to_device(gy, self.source)


class Clone(Function):
    """y = a copy of x;  dx = gy."""

    saved_inputs, saves_outputs = (), False
    flops = moves_only

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return gy


# ------------------------------------------------------------------------------------------ public functions
def add(input: Any, other: Any) -> Tensor:
    """input + other, broadcasting."""
    return Add()(*operands("add", input, other))


def sub(input: Any, other: Any) -> Tensor:
    """input - other, broadcasting."""
    return Sub()(*operands("sub", input, other))


def mul(input: Any, other: Any) -> Tensor:
    """input * other, broadcasting."""
    return Mul()(*operands("mul", input, other))


def div(input: Any, other: Any) -> Tensor:
    """input / other (true division), broadcasting; integer operands give float32."""
    a, b = operands("div", input, other)
    if a.dtype.kind in "biu":
        a, b = cast(a, numpy.float32), cast(b, numpy.float32)
    return Div()(a, b)


def neg(input: Tensor) -> Tensor:
    """-input."""
    return Neg()(input)


def pow(input: Any, exponent: Any) -> Tensor:
    """input ** exponent; a Python-number exponent is a constant of the op, a tensor exponent is differentiated."""
    if isinstance(input, Tensor) and not isinstance(exponent, Tensor) and numpy.ndim(exponent) == 0:
        return PowScalar(float(exponent) if isinstance(exponent, float) else exponent)(input)
    return Pow()(*operands("pow", input, exponent))


def exp(input: Tensor) -> Tensor:
    """e ** input."""
    return Exp()(input)


def log(input: Tensor) -> Tensor:
    """Natural logarithm (log(0) = -inf and log(x<0) = nan, as in NumPy)."""
    return Log()(input)


def sqrt(input: Tensor) -> Tensor:
    """Square root."""
    return Sqrt()(input)


def abs(input: Tensor) -> Tensor:
    """|input|."""
    return Abs()(input)


def erf(input: Tensor) -> Tensor:
    """The Gauss error function."""
    return Erf()(input)


@on_the_inputs_device
def sign(input: Tensor) -> Tensor:
    """-1, 0 or 1 by the sign of each element (no gradient: its derivative is zero almost everywhere)."""
    input = require_tensor("sign", input)
    return constant(get_array_module(input.data).sign(input.data))


@on_the_inputs_device
def maximum(input: Any, other: Any) -> Tensor:
    """Elementwise max; at ties the gradient goes to ``input``."""
    a, b = operands("maximum", input, other)
    check_broadcast("maximum", a, b)
    return where(a.data >= b.data, a, b)


@on_the_inputs_device
def minimum(input: Any, other: Any) -> Tensor:
    """Elementwise min; at ties the gradient goes to ``input``."""
    a, b = operands("minimum", input, other)
    check_broadcast("minimum", a, b)
    return where(a.data <= b.data, a, b)


def where(condition: Any, input: Any, other: Any) -> Tensor:
    """``input`` where ``condition`` holds, else ``other`` (all three broadcast together)."""
    condition = condition.data if isinstance(condition, Tensor) else condition
    a, b = operands("where", input, other)
    if is_array(condition) and getattr(condition, "ndim", 0) and device_of(condition) != a.device:
        raise RuntimeError(f"where: the condition is on {device_of(condition)} but the values are on {a.device}; "
                           "move it with .to(device)")
    return Where(condition)(a, b)


@on_the_inputs_device
def clamp(input: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """Clip each element to [min, max]; the gradient passes where the input lies inside the range."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    result = input
    if min is not None:
        result = where(input.data >= (min.data if isinstance(min, Tensor) else min), result, min)
    if max is not None:
        result = where(input.data <= (max.data if isinstance(max, Tensor) else max), result, max)
    return result


def clone(input: Tensor) -> Tensor:
    """A copy of ``input`` that stays in the graph."""
    return Clone()(input)


def cast(input: Tensor, dtype: Any) -> Tensor:
    """``input`` converted to ``dtype`` (differentiable between floating dtypes)."""
    try:
        dtype = numpy.dtype(dtype)
    except TypeError:
        raise TypeError(f"cast: {dtype!r} is not a dtype (try tinydl.float32, tinydl.int64, ...)") from None
    if input.requires_grad and dtype.kind not in "fc":
        return constant(input.data.astype(dtype))
    return Cast(dtype)(input)


def to_device(input: Tensor, target: Any) -> Tensor:
    """``input`` copied to device ``target`` (differentiable)."""
    try:
        target = device(target)
    except (TypeError, ValueError) as error:
        raise type(error)(f"to_device: {error}") from None
    if input.device == target:
        return input
    return ToDevice(target)(input)


# ----------------------------------------------------------------------------- comparisons (no gradient)
def _compare(op: str, ufunc_name: str, input: Any, other: Any) -> Tensor:
    a, b = operands(op, input, other)
    xp = get_array_module(a.data)
    try:
        with device_scope(a.data):
            return constant(getattr(xp, ufunc_name)(a.data, b.data))
    except ValueError as error:
        raise ValueError(f"{op}: {error} (shapes {tuple(a.shape)} and {tuple(b.shape)})") from error


def eq(input: Any, other: Any) -> Tensor:
    """input == other, elementwise (bool, no gradient)."""
    return _compare("eq", "equal", input, other)


def ne(input: Any, other: Any) -> Tensor:
    """input != other, elementwise (bool, no gradient)."""
    return _compare("ne", "not_equal", input, other)


def lt(input: Any, other: Any) -> Tensor:
    """input < other, elementwise (bool, no gradient)."""
    return _compare("lt", "less", input, other)


def le(input: Any, other: Any) -> Tensor:
    """input <= other, elementwise (bool, no gradient)."""
    return _compare("le", "less_equal", input, other)


def gt(input: Any, other: Any) -> Tensor:
    """input > other, elementwise (bool, no gradient)."""
    return _compare("gt", "greater", input, other)


def ge(input: Any, other: Any) -> Tensor:
    """input >= other, elementwise (bool, no gradient)."""
    return _compare("ge", "greater_equal", input, other)


@on_the_inputs_device
def logical_not(input: Any) -> Tensor:
    """Elementwise not (bool, no gradient)."""
    input = require_tensor("logical_not", input)
    return constant(get_array_module(input.data).logical_not(input.data))


@on_the_inputs_device
def logical_and(input: Any, other: Any) -> Tensor:
    """Elementwise and (bool, no gradient)."""
    return _compare("logical_and", "logical_and", input, other)


@on_the_inputs_device
def logical_or(input: Any, other: Any) -> Tensor:
    """Elementwise or (bool, no gradient)."""
    return _compare("logical_or", "logical_or", input, other)
