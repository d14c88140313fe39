"""Hypothesis strategies for property-testing ops: shapes, broadcastable shapes, arrays (optionally
non-contiguous) and tensors. They are public so that users test their own kernels the way tinydl tests its own.

Every array strategy draws float64 values by default (what gradient checks need); ``dtype=numpy.float32`` gives
float32. Values are bounded and finite; ``avoid`` keeps them away from points where an op is not differentiable.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..tensor import Tensor

__all__ = ["shapes", "broadcastable_shapes", "arrays", "tensors", "non_contiguous", "dims_for"]


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4) -> st.SearchStrategy:
    """Array shapes with ``min_dims..max_dims`` axes of ``min_side..max_side`` elements each."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 3, max_side: int = 4
                         ) -> st.SearchStrategy:
    """Tuples of ``num_shapes`` shapes that broadcast together (some axes of size 1, some missing)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims,
                                             max_side=max_side).map(lambda result: tuple(result.input_shapes))


def non_contiguous(array: numpy.ndarray, kind: str = "strided") -> numpy.ndarray:
    """The same values in a non-contiguous layout: ``"strided"`` (every other element of a wider buffer) or
    ``"transposed"`` (a transposed view of a C-contiguous buffer)."""
    if array.ndim == 0:
        return array
    if kind == "transposed":
        return numpy.ascontiguousarray(array.T).T
    buffer = numpy.zeros(array.shape + (2,), dtype=array.dtype)
    buffer[..., 0] = array
    return buffer[..., 0]


@st.composite
def arrays(draw: Any, shape: Any = None, dtype: Any = numpy.float64, low: float = -3.0, high: float = 3.0,
           avoid: Sequence[float] = (), margin: float = 1e-2, contiguous: bool | None = True) -> numpy.ndarray:
    """Arrays of ``shape`` (a shape or a strategy of shapes; default ``shapes()``) with finite values in
    [low, high], at least ``margin`` away from every point in ``avoid`` (kinks such as 0 for relu or abs).

    ``contiguous=False`` always returns a non-contiguous view; ``None`` lets hypothesis choose.
    """
    if shape is None:
        shape = shapes()
    if isinstance(shape, st.SearchStrategy):
        shape = draw(shape)
    # float32-representable values, so float32 and float64 runs of an op start from the same numbers
    low32, high32 = (float(numpy.nextafter(numpy.float32(b), numpy.float32(towards)))
                     if float(numpy.float32(b)) != b else b for b, towards in ((low, high), (high, low)))
    elements = st.floats(low32, high32, allow_nan=False, allow_infinity=False, allow_subnormal=False, width=32)
    if avoid:
        elements = elements.filter(lambda v: all(abs(v - point) >= margin for point in avoid))
    array = draw(hnp.arrays(numpy.float64, shape, elements=elements)).astype(dtype)
    layout = contiguous if contiguous is not None else draw(st.booleans())
    if not layout:
        array = non_contiguous(array, draw(st.sampled_from(["strided", "transposed"])))
    return array


@st.composite
def tensors(draw: Any, requires_grad: bool = True, **array_kwargs: Any) -> Tensor:
    """Tensors wrapping :func:`arrays` (same keyword arguments)."""
    return Tensor(draw(arrays(**array_kwargs)), requires_grad=requires_grad)


def dims_for(ndim: int, allow_none: bool = False) -> st.SearchStrategy:
    """A valid ``dim`` argument for a tensor of ``ndim`` axes (negative ones included)."""
    if ndim == 0:
        return st.just(None) if allow_none else st.sampled_from([0, -1])
    options = st.integers(-ndim, ndim - 1)
    return st.one_of(st.none(), options) if allow_none else options
