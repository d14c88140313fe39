"""Turning the operands of an op into Tensors of one dtype, without silent upcasts.

Rules (those of PyTorch, minus its promotion between float widths, which hides costly mistakes):

* A Python or NumPy scalar takes the tensor's dtype (``x32 * 2.0`` stays float32); a float scalar with an
  integer tensor gives float32, the default float dtype.
* A floating tensor combined with an integer or boolean tensor: the integer one is converted to the float dtype.
* Two floating tensors of different widths (float32 with float64): ``TypeError`` naming the op and the dtypes,
  so the caller converts explicitly with ``.float()`` / ``.double()``.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy

from ..backend import device_scope, get_array_module
from ..tensor import Tensor

_DEFAULT_FLOAT = numpy.dtype(numpy.float32)


def is_float(dtype: numpy.dtype) -> bool:
    return dtype.kind in "fc"


def scalar_like(value: Any, like: Tensor) -> Tensor:
    """A 0-d Tensor holding a Python/NumPy scalar, on ``like``'s device, with the dtype the rules give."""
    dtype = like.dtype
    if isinstance(value, (bool, numpy.bool_)):
        dtype = dtype if dtype.kind != "b" else numpy.dtype(bool)
    elif not is_float(dtype) and isinstance(value, (float, numpy.floating)):
        dtype = _DEFAULT_FLOAT
    elif dtype.kind == "b" and isinstance(value, numbers.Integral):
        dtype = numpy.dtype(numpy.int64)
    make = get_array_module(like.data).asarray
    if type(like.data) is numpy.ndarray:
        return Tensor._from_array(make(value, dtype=dtype))
    with device_scope(like.data):  # on like's GPU, not on the current one
        return Tensor._from_array(make(value, dtype=dtype))


def to_tensor(value: Any, like: Tensor | None = None) -> Tensor:
    """``value`` as a Tensor: Tensors pass through, scalars follow ``like``, arrays are wrapped."""
    if isinstance(value, Tensor):
        return value
    if like is not None and isinstance(value, (numbers.Number, numpy.generic)):
        return scalar_like(value, like)
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        return Tensor(value)
    from ..tensor import tensor
    return tensor(value)


def operands(op: str, *values: Any) -> list[Tensor]:
    """The Tensors an op computes on: scalars converted, integer tensors cast to the float dtype in use."""
    if len(values) == 2:  # the hot path: two tensors of one dtype
        first, second = values
        if isinstance(first, Tensor) and isinstance(second, Tensor) and first.data.dtype == second.data.dtype:
            return [first, second]
    elif values and isinstance(values[0], Tensor):  # more operands (linear, the recurrent ops): all of one dtype
        dtype = values[0].data.dtype
        if all(isinstance(v, Tensor) and v.data.dtype == dtype for v in values):
            return list(values)
    anchor = next((v for v in values if isinstance(v, Tensor)), None)
    if anchor is None:
        anchor = to_tensor(values[0])
    tensors = [to_tensor(v, anchor) for v in values]
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) == 1:
        return tensors
    floats = {d for d in dtypes if is_float(d)}
    if len(floats) > 1:
        listing = " and ".join(str(t.dtype) for t in tensors)
        raise TypeError(f"{op}: operands have different floating dtypes ({listing}); tinydl does not upcast "
                        "silently: convert one explicitly with .float() or .double()")
    if floats:
        target = floats.pop()
    else:
        target = numpy.result_type(*dtypes)
    with device_scope(tensors[0].data):
        return [t if t.dtype == target else Tensor._from_array(t.data.astype(target)) for t in tensors]


def require_tensor(op: str, value: Any) -> Tensor:
    """``value`` itself when it is a Tensor; otherwise a TypeError naming the op and what it got."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(value).__name__}")
    return value


def check_broadcast(op: str, *tensors: Tensor) -> None:
    """A ValueError naming the op and the shapes when the tensors' shapes do not broadcast together."""
    shapes = [tuple(t.shape) for t in tensors]
    try:
        numpy.broadcast_shapes(*shapes)
    except ValueError:
        listing = " and ".join(str(shape) for shape in shapes)
        raise ValueError(f"{op}: shapes {listing} cannot be broadcast together") from None
