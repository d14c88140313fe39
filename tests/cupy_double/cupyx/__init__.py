"""``cupyx`` on the double: ``scatter_add`` (and max/min), pinned host arrays, ``allow_synchronize`` /
``DeviceSynchronized`` (CuPy's own detector of device synchronisation, which the double drives from its
device-to-host counter), ``rsqrt``; ``cupyx.scipy.special`` has ``erf``."""
from __future__ import annotations

import contextlib
from typing import Any

import numpy

from cupy import _double
from cupy._double import unwrap
from cupy._ndarray import _index_key
from cupy._ufunc import _operand
from . import scipy  # noqa: F401


class DeviceSynchronized(RuntimeError):
    """Raised when device synchronisation happens inside ``allow_synchronize(False)``."""

    def __init__(self, message: str | None = None):
        super().__init__(message or "Device synchronization was detected while disallowed.")


@contextlib.contextmanager
def allow_synchronize(allow: bool) -> Any:
    previous = _double.state.sync_allowed
    _double.state.sync_allowed = bool(allow)
    try:
        yield
    finally:
        _double.state.sync_allowed = previous


def _scatter(ufunc: numpy.ufunc, a: Any, slices: Any, value: Any) -> None:
    ufunc.at(_operand(a), _index_key(slices), _operand(value))


def scatter_add(a: Any, slices: Any, value: Any) -> None:
    """a[slices] += value, repeated indices accumulating (CuPy's atomicAdd scatter)."""
    _scatter(numpy.add, a, slices, value)


def scatter_max(a: Any, slices: Any, value: Any) -> None:
    _scatter(numpy.maximum, a, slices, value)


def scatter_min(a: Any, slices: Any, value: Any) -> None:
    _scatter(numpy.minimum, a, slices, value)


def empty_pinned(shape: Any, dtype: Any = float, order: str = "C") -> numpy.ndarray:
    """A NumPy array in pinned host memory (the double remembers it as pinned)."""
    return _double.register_pinned(numpy.empty(shape, dtype=dtype, order=order))


def zeros_pinned(shape: Any, dtype: Any = float, order: str = "C") -> numpy.ndarray:
    out = empty_pinned(shape, dtype, order)
    out[...] = 0
    return out


def empty_like_pinned(a: Any, dtype: Any = None, order: str = "K", subok: Any = None,
                      shape: Any = None) -> numpy.ndarray:
    return empty_pinned(a.shape if shape is None else shape, a.dtype if dtype is None else dtype)


def zeros_like_pinned(a: Any, dtype: Any = None, order: str = "K", subok: Any = None,
                      shape: Any = None) -> numpy.ndarray:
    return zeros_pinned(a.shape if shape is None else shape, a.dtype if dtype is None else dtype)


def rsqrt(x: Any, out: Any = None) -> Any:
    import cupy
    return cupy.reciprocal(cupy.sqrt(x), out=out)


errstate, geterr, seterr = numpy.errstate, numpy.geterr, numpy.seterr


def __getattr__(name: str) -> Any:
    if name in _double.NAMES["cupyx"]:
        raise NotImplementedError(f"the CuPy double does not implement cupyx.{name}")
    raise AttributeError(f"module 'cupyx' has no attribute {name!r}")
