"""CuPy's ufuncs on the double: NumPy's ufunc of the same name, under CuPy's rules.

* Inputs must be device arrays (on the current device) or Python/NumPy scalars: a host array or a list raises
  ``TypeError: Unsupported type``, as in CuPy's kernel argument check.
* ``ufunc.reduce`` exists only for ``add`` and ``multiply``; CuPy 14 raises ``NotImplementedError`` for every
  other ufunc (``cupy.fmax.reduce`` -> "`cupy_fmax.reduce` is not supported yet"). ``accumulate``, ``reduceat``
  and ``outer`` follow the same rule here; ``at`` is CuPy's scatter for add, maximum and minimum.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy

from . import _double
from ._double import NAMES, unsupported, wrap

_UFUNCS = frozenset(NAMES["cupy.ufuncs"])
_REDUCIBLE = {"add", "multiply"}
_SCATTERABLE = {"add", "maximum", "minimum"}  # the ufuncs CuPy builds with a scatter_op


def _operand(value: Any) -> Any:
    from ._ndarray import ndarray
    if isinstance(value, ndarray):
        _double.check_current_device(value)
        return value._a
    if _double.is_scalar(value):
        return value
    raise unsupported(value)


class ufunc:
    """A CuPy ufunc of the double (``cupy.exp``, ``cupy.add``, ...)."""

    def __init__(self, name: str, numpy_ufunc: numpy.ufunc):
        self.name, self._ufunc = name, numpy_ufunc
        self.nin, self.nout, self.nargs = numpy_ufunc.nin, numpy_ufunc.nout, numpy_ufunc.nargs
        self.types = numpy_ufunc.types
        self.__name__ = name

    def __repr__(self) -> str:
        return f"<ufunc 'cupy_{self.name}'>"

    def __call__(self, *args: Any, out: Any = None, **kwargs: Any) -> Any:
        outputs: dict[int, Any] = {}
        if out is not None:
            outs = out if isinstance(out, tuple) else (out,)
            raw = tuple(_operand(o) for o in outs)
            outputs = {id(r): o for r, o in zip(raw, outs)}
            kwargs["out"] = raw if isinstance(out, tuple) else raw[0]
        if "where" in kwargs:
            kwargs["where"] = _operand(kwargs["where"])
        return wrap(self._ufunc(*[_operand(a) for a in args], **kwargs), outputs)

    def _reduction(self, method: str, allowed: set[str], array: Any, *args: Any, **kwargs: Any) -> Any:
        if self.name not in allowed:
            raise NotImplementedError(f"`cupy_{self.name}.{method}` is not supported yet")
        out = kwargs.pop("out", None)
        result = getattr(self._ufunc, method)(_operand(array), *args, **kwargs)
        if out is not None:
            out[...] = wrap(result)
            return out
        return wrap(result)

    def reduce(self, array: Any, *args: Any, **kwargs: Any) -> Any:
        return self._reduction("reduce", _REDUCIBLE, array, *args, **kwargs)

    def accumulate(self, array: Any, *args: Any, **kwargs: Any) -> Any:
        return self._reduction("accumulate", _REDUCIBLE, array, *args, **kwargs)

    def reduceat(self, array: Any, *args: Any, **kwargs: Any) -> Any:
        return self._reduction("reduceat", set(), array, *args, **kwargs)

    def outer(self, a: Any, b: Any, **kwargs: Any) -> Any:
        return wrap(self._ufunc.outer(_operand(a), _operand(b), **kwargs))

    def at(self, target: Any, indices: Any, values: Any = None) -> None:
        if self.name not in _SCATTERABLE:
            raise NotImplementedError(f"`cupy_{self.name}.at` is not supported yet")
        from ._ndarray import _index_key
        self._ufunc.at(_operand(target), _index_key(indices), () if values is None else _operand(values))


@functools.lru_cache(maxsize=None)
def ufunc_named(name: str) -> "ufunc | None":
    """CuPy's ufunc called ``name`` (NumPy's aliases such as ``true_divide`` resolved), or None if CuPy has none."""
    numpy_ufunc = getattr(numpy, name, None)
    if not isinstance(numpy_ufunc, numpy.ufunc):
        return None
    for candidate in (name, numpy_ufunc.__name__):
        if candidate in _UFUNCS:
            return ufunc(candidate, numpy_ufunc)
    if name == "matmul" and "matmul" in NAMES["cupy"]:  # a gufunc in CuPy, not listed among its ufuncs
        return ufunc(name, numpy_ufunc)
    return None
