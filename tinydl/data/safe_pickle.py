"""A pickle reader that can rebuild NumPy arrays and plain containers, and nothing else.

Unpickling runs whatever callables a pickle names, so an ordinary ``pickle.load`` of a downloaded file can execute
arbitrary code. ``RestrictedUnpickler.find_class`` admits only the few NumPy functions that reconstruct an ndarray
and its dtype (and a latin-1 ``_codecs.encode``, which Python 3 uses for bytes in protocol-2 pickles); every other
global (``os.system``, ``builtins.eval``, any class) is refused before it is called.
Dicts, lists, tuples, strings, bytes and numbers need no globals at all.
"""
from __future__ import annotations

import importlib
import io
import pickle
from typing import Any

import numpy as np


def _numpy_core(submodule: str) -> Any:
    """``numpy._core.<submodule>`` (NumPy 2), or ``numpy.core.<submodule>`` on NumPy 1."""
    try:
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:
        return importlib.import_module(f"numpy.core.{submodule}")


def _latin1_encode(text: str, encoding: str) -> bytes:
    """What Python 3 writes for ``bytes`` in a protocol-2 pickle: ``_codecs.encode(text, "latin1")``."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise RefusedPickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


# (module named in the pickle, name) -> the object it stands for; NumPy 2 moved numpy.core to numpy._core
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_core("multiarray")._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_core("multiarray")._reconstruct,
    ("numpy.core.numeric", "_frombuffer"): lambda: _numpy_core("numeric")._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): lambda: _numpy_core("numeric")._frombuffer,
    ("_codecs", "encode"): lambda: _latin1_encode,
}


class RefusedPickleError(pickle.UnpicklingError):
    """The pickle asks for something other than NumPy arrays and plain containers; it was not executed."""


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` knows only NumPy's array reconstruction functions."""

    def find_class(self, module: str, name: str) -> Any:
        resolve = _ALLOWED_GLOBALS.get((module, name))
        if resolve is None:
            raise RefusedPickleError(f"refusing to load global {module}.{name}: only NumPy arrays and plain "
                                         f"containers are allowed")
        return resolve()


_PLAIN_LEAVES = (str, bytes, int, float, complex, bool, type(None))


def _check_plain_data(value: Any) -> None:
    """Only containers, numbers, strings and numeric arrays may come out (not the classes and functions the
    admitted globals stand for, nor object arrays, which could hide anything)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain_data(key)
            _check_plain_data(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_plain_data(item)
    elif isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise RefusedPickleError("refusing an object array: only numeric arrays are allowed")
    elif not isinstance(value, _PLAIN_LEAVES):
        raise RefusedPickleError(f"refusing a value of type {type(value).__name__}: only NumPy arrays and plain "
                                 f"containers are allowed")


def safe_loads(payload: bytes) -> Any:
    """Unpickle ``payload`` (Python 2 pickles included: their strings come back as bytes) with the restricted
    unpickler. Raises :class:`RefusedPickleError` for anything but arrays and plain containers (before running it),
and ``pickle.UnpicklingError``, EOFError, ... for a malformed or truncated pickle."""
    value = RestrictedUnpickler(io.BytesIO(payload), encoding="bytes").load()
    _check_plain_data(value)
    return value
