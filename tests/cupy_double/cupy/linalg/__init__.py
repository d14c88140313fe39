"""``cupy.linalg`` on the double: NumPy's linalg function of the same name on device data, for the names CuPy's
linalg has."""
from __future__ import annotations

from typing import Any

import numpy

from .._double import NAMES, device_function


def __getattr__(name: str) -> Any:
    if name not in NAMES["cupy.linalg"]:
        raise AttributeError(f"module 'cupy.linalg' has no attribute {name!r}")
    function = getattr(numpy.linalg, name, None)
    if function is None:
        raise NotImplementedError(f"the CuPy double does not implement cupy.linalg.{name}")
    globals()[name] = function = device_function(name, function)
    return function
