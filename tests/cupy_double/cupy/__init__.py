"""The CuPy double: a stand-in for CuPy, written on NumPy, that the test suite puts on ``sys.path`` when real CuPy
with a GPU is not available (``tests/conftest.py``). With it, every GPU test of tinydl runs on machines without a
GPU, under the rules of real CuPy that catch GPU bugs; on a machine with CuPy and a GPU, the same tests run on the
real thing.

What it is: ``cupy.ndarray`` wraps a NumPy array and records the device it lives on; every CuPy function is
NumPy's function of the same name applied to the wrapped data. Results are bit-identical to NumPy's, so a test
can compare "cuda" against "cpu" to the last bit. It is slow only where NumPy is.

The rules it keeps (each one a way real GPU runs fail), with where they live:

* device arrays are not ``numpy.ndarray`` and their class's module is ``cupy`` (``_ndarray.py``);
* no implicit host<->device conversion: ``numpy.asarray(device_array)`` / ``__array__`` raise ``TypeError``;
  a host array given to device maths (a ufunc, ``cupy.<function>``, a NumPy function dispatched to CuPy, a
  ``where=`` mask) raises ``TypeError: Unsupported type``; Python and NumPy scalars mix freely; ``float()``,
  ``int()``, ``bool()``, ``.item()``, ``.tolist()``, ``.get()``, ``cupy.asnumpy`` and ``cupy.asarray`` work and
  are counted (``cupy._double.counters``), and inside ``cupyx.allow_synchronize(False)`` a device-to-host read
  raises ``cupyx.DeviceSynchronized`` (``_double.py``, ``_functions.py``); so do the hidden reads of CuPy's own
  source: boolean-mask indexing (CuPy counts the mask on the host to size the result) and functions whose result
  size depends on the values (``nonzero``, ``argwhere``, ``unique``, ...);
* only names real CuPy 14 has exist, for module functions, ndarray methods, ``cupy.random.Generator`` methods
  (no ``permutation``) and ``cupyx``; the list is generated from the installed package by ``make_names.py``;
* ``ufunc.reduce`` works for ``add`` and ``multiply`` only (``_ufunc.py``);
* basic-index assignment refuses host arrays and lists (CuPy's ``fill``), integer-array assignment copies a host
  value over, ``copyto`` takes a scalar or size-1 host source only; ``broadcast_to`` returns a writable stride-0
  view; ``flags`` has no ``writeable`` (``_ndarray.py``, ``_functions.py``);
* two GPUs: ``cupy.cuda.Device(i)`` switches the current device, allocations record it, and maths on an array
  that is not on the current device raises (CuPy needs peer access for that, and would put the result on the
  current device) (``cuda/__init__.py``, ``_double.check_current_device``);
* the memory pool counts live bytes per device; ``cupyx.empty_pinned`` buffers are remembered as pinned;
* ``ElementwiseKernel``, ``ReductionKernel``, ``RawKernel``, ``RawModule`` and ``fuse`` build, but raise
  ``cupy._double.KernelUnavailable`` when called (``_functions.py``).

What it does not model: asynchrony (everything runs at once), streams and events (always done), real memory
limits, dtype rules where CuPy differs from NumPy, out-of-range indices (CuPy wraps them around, the double
raises as NumPy does), and speed.
"""
from __future__ import annotations

from typing import Any

import numpy

from . import _double, cuda, lib, linalg, random  # noqa: F401
from ._double import NAMES, device_function
from ._functions import (ElementwiseKernel, RawKernel, RawModule, ReductionKernel, array, asanyarray, asarray,
                         asnumpy, broadcast_to, copyto, fuse, get_array_module, get_default_memory_pool,
                         get_default_pinned_memory_pool)
from ._ndarray import ndarray
from ._ufunc import ufunc, ufunc_named

__version__ = NAMES["version"] + "+double"


def is_available() -> bool:
    return True


def __getattr__(name: str) -> Any:
    """``cupy.<name>`` for the remaining names of real CuPy: its ufuncs, NumPy's dtypes and constants, and
    NumPy's function of that name on device data. Names CuPy lacks raise AttributeError."""
    if name not in NAMES["cupy"]:
        raise AttributeError(f"module 'cupy' has no attribute {name!r}")
    value: Any = ufunc_named(name) if name in NAMES["cupy.ufuncs"] else None
    if value is None:
        value = getattr(numpy, name, None)
        if value is None:
            raise NotImplementedError(f"the CuPy double does not implement cupy.{name}")
        if callable(value) and not isinstance(value, type):
            value = device_function(name, value)
    globals()[name] = value
    return value
