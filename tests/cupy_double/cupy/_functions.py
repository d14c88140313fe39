"""Module-level functions of the CuPy double whose rules differ from "NumPy's function on device data".

* ``array`` / ``asarray`` / ``asanyarray`` are the explicit host-to-device copies: they accept host data (counted
  as a transfer, and as a pinned one when the host buffer came from ``cupyx.empty_pinned``), and copy a device
  array from another device onto the current one.
* ``asnumpy`` is the explicit device-to-host copy.
* ``copyto`` takes a scalar or a size-1 host array as its source, never a larger host array.
* ``broadcast_to`` returns a writable view with stride 0, as CuPy does (NumPy's is read-only).
* the user-kernel builders (``ElementwiseKernel``, ``ReductionKernel``, ``RawKernel``, ``RawModule``, ``fuse``)
  build objects that raise :class:`cupy._double.KernelUnavailable` when called: the double has no GPU to run CUDA
  C on, so tinydl runs on it with fused kernels switched off (``TINYDL_FUSED_KERNELS=0``).
"""
from __future__ import annotations

from typing import Any

import numpy

from . import _double
from ._double import KernelUnavailable, state, unwrap, wrap
from ._ndarray import ndarray


def _from_host_or_device(obj: Any, dtype: Any, copy: bool, order: str, ndmin: int = 0) -> ndarray:
    if isinstance(obj, ndarray):
        same_place = obj._device == state.device
        data = numpy.array(obj._a, dtype=dtype, copy=True if copy or not same_place else None, order=order,
                           ndmin=ndmin)
        return obj if data is obj._a and same_place else ndarray._adopt(data, state.device)
    _double.host_to_device(obj)
    data = numpy.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin)
    if data.dtype == object:
        raise ValueError(f"Unsupported dtype object (from {type(obj).__name__})")
    return ndarray._adopt(data, state.device)


def array(obj: Any, dtype: Any = None, copy: bool = True, order: str = "K", subok: bool = False, ndmin: int = 0,
          *, blocking: bool = False) -> ndarray:
    return _from_host_or_device(obj, dtype, copy, order, ndmin)


def asarray(a: Any, dtype: Any = None, order: Any = None, *, blocking: bool = False) -> ndarray:
    return _from_host_or_device(a, dtype, False, order or "K")


asanyarray = asarray


def asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None, *, blocking: bool = True) -> Any:
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    result = numpy.asarray(a, order=order)
    if out is not None:
        out[...] = result
        return out
    return result


def get_array_module(*args: Any) -> Any:
    import cupy
    return cupy if any(isinstance(a, ndarray) for a in args) else numpy


def copyto(dst: ndarray, src: Any, casting: str = "same_kind", where: Any = None) -> None:
    """CuPy's copyto: ``src`` a device array or a scalar (a size-1 host array counts as one); ``where`` on the
    device."""
    if isinstance(src, numpy.ndarray):
        if src.size != 1:
            raise ValueError("non-scalar numpy.ndarray cannot be used for copyto")
        src = src.reshape(())[()]
    numpy.copyto(unwrap(dst), unwrap(src), casting=casting, where=True if where is None else unwrap(where))


def broadcast_to(array: ndarray, shape: Any) -> ndarray:
    data = unwrap(array)
    view = numpy.broadcast_to(data, shape)
    return wrap(numpy.lib.stride_tricks.as_strided(data, shape=view.shape, strides=view.strides))


# ---------------------------------------------------------------------------------------- user kernels
class _UserKernel:
    """A CUDA kernel source, kept but never compiled: calling it raises KernelUnavailable."""

    kind = "kernel"

    def __init__(self, *args: Any, **kwargs: Any):
        self.args, self.kwargs = args, kwargs
        self.name = kwargs.get("name") or (args[-1] if args and isinstance(args[-1], str) and len(args) > 3
                                           else type(self).__name__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise KernelUnavailable(
            f"{type(self).__name__} {self.name!r} was called on the CuPy double, which cannot run CUDA code; "
            "tests run tinydl with fused kernels off (TINYDL_FUSED_KERNELS=0), and the kernel itself is tested on "
            "a real GPU")


class ElementwiseKernel(_UserKernel):
    pass


class ReductionKernel(_UserKernel):
    pass


class RawKernel(_UserKernel):
    pass


class RawModule:
    """Keeps the CUDA source; ``get_function`` hands back a RawKernel that raises when called."""

    def __init__(self, code: str | None = None, *args: Any, **kwargs: Any):
        self.code = code

    def get_function(self, name: str) -> RawKernel:
        return RawKernel(self.code, name, name=name)


def fuse(*args: Any, **kwargs: Any) -> Any:
    """``@cupy.fuse()`` or ``@cupy.fuse``: the function is kept, calling the fused version raises."""
    def decorate(function: Any) -> _UserKernel:
        return _UserKernel(name=getattr(function, "__name__", "fused"))
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return decorate(args[0])
    return decorate


def get_default_memory_pool() -> Any:
    from .cuda import _DEFAULT_POOL
    return _DEFAULT_POOL


def get_default_pinned_memory_pool() -> Any:
    from .cuda import _DEFAULT_PINNED_POOL
    return _DEFAULT_PINNED_POOL
