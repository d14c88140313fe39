"""``cupy.random`` on the double: NumPy's generators behind CuPy's names.

``default_rng(seed)`` gives a :class:`Generator` with exactly the methods of CuPy 14's ``Generator`` (read from
``cupy_names.json``): ``random``, ``standard_normal``, ``integers``, ``uniform``, ... but, unlike NumPy's, no
``permutation``, ``shuffle`` or ``choice``. Its samples are device arrays on the current device. The legacy
module-level functions (``cupy.random.seed``, ``permutation``, ``randn``, ...) exist where CuPy has them.
"""
from __future__ import annotations

from typing import Any

import numpy

from .._double import NAMES, device_function, state, unwrap, wrap

_GENERATOR_METHODS = frozenset(NAMES["cupy.random.Generator"])


class Generator:
    """CuPy's Generator: a bit generator whose state lives on the device that was current at creation."""

    def __init__(self, bit_generator: Any = None):
        self._numpy = numpy.random.default_rng(bit_generator)
        self.device = state.device

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in _GENERATOR_METHODS:
            raise AttributeError(f"'cupy.random._generator_api.Generator' object has no attribute {name!r}")
        method = getattr(self._numpy, name)

        def sample(*args: Any, **kwargs: Any) -> Any:
            out = kwargs.pop("out", None)
            result = wrap(method(*unwrap(args), **{k: unwrap(v) for k, v in kwargs.items()}))
            if out is not None:
                out[...] = result
                return out
            return result
        return sample


def default_rng(seed: Any = None) -> Generator:
    return Generator(seed)


def __getattr__(name: str) -> Any:
    if name not in NAMES["cupy.random"]:
        raise AttributeError(f"module 'cupy.random' has no attribute {name!r}")
    legacy = getattr(numpy.random, name, None)
    if legacy is None:
        raise NotImplementedError(f"the CuPy double does not implement cupy.random.{name}")
    if isinstance(legacy, type):
        return legacy
    function = device_function(name, legacy)
    globals()[name] = function
    return function
