"""``cupy.lib.stride_tricks.as_strided`` on the double: a writable view of the same device memory."""
from __future__ import annotations

from typing import Any

import numpy

from .._double import unwrap, wrap


def as_strided(x: Any, shape: Any = None, strides: Any = None) -> Any:
    return wrap(numpy.lib.stride_tricks.as_strided(unwrap(x), shape=shape, strides=strides))


def sliding_window_view(x: Any, window_shape: Any, axis: Any = None, *, subok: bool = False,
                        writeable: bool = False) -> Any:
    return wrap(numpy.lib.stride_tricks.sliding_window_view(unwrap(x), window_shape, axis))
