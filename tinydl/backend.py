"""The backend seam: which array module (NumPy or CuPy) holds a tensor's data, and on which device.

Every op asks its inputs for their array module with :func:`get_array_module` and does its maths through that
module, so one code path serves both backends. CuPy is imported only when a CUDA device is first asked for.

The *fusion switch* says whether the fused CUDA kernels of :mod:`tinydl.kernels.cuda` may replace the plain
array-module path on CuPy arrays: on by default, off for the whole library with ``TINYDL_FUSED_KERNELS=0`` in the
environment, and changeable at run time with :func:`set_fused_kernels` (also a context manager). NumPy arrays
always take the plain path.
"""
from __future__ import annotations

import contextlib
import functools
import os
from types import ModuleType
from typing import Any

import numpy

__all__ = ["Device", "device", "get_array_module", "to_device", "is_available", "device_of", "is_array", "is_cupy",
           "fused_kernels_enabled", "set_fused_kernels", "device_scope"]


class Device:
    """A place where arrays live: ``Device("cpu")``, ``Device("cuda")`` (= ``"cuda:0"``) or ``Device("cuda:1")``."""

    __slots__ = ("type", "index")

    def __init__(self, spec: "str | Device" = "cpu", index: int | None = None):
        if isinstance(spec, Device):
            self.type, self.index = spec.type, spec.index
            return
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a string such as 'cpu' or 'cuda:0', got {spec!r}")
        kind, _, number = spec.partition(":")
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"device: unknown device type {spec!r}; expected 'cpu', 'cuda' or 'cuda:N'")
        if number:
            if not number.isdigit() or index is not None:
                raise ValueError(f"device: malformed device string {spec!r}; expected 'cuda:N'")
            index = int(number)
        if kind == "cpu":
            if index not in (None, 0):
                raise ValueError(f"device: the cpu has no index, got {spec!r} with index {index}")
            index = None
        elif index is None:
            index = 0
        self.type, self.index = kind, index

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            other = Device(other)
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return "cpu" if self.type == "cpu" else f"cuda:{self.index}"

    def __repr__(self) -> str:
        return f"device('{self}')"


CPU = Device("cpu")


def device(spec: "str | Device" = "cpu") -> Device:
    """``tinydl.device("cuda:0")``: parse a device string (or pass a Device through)."""
    return spec if isinstance(spec, Device) else Device(spec)


@functools.lru_cache(maxsize=None)
def _cupy() -> ModuleType:
    """Import CuPy on first use, with an error that says how to get it."""
    try:
        import cupy
    except ImportError as error:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "device 'cuda' needs CuPy, which is not installed: pip install 'tinydl[gpu]' "
            "(CuPy for CUDA 12) or 'tinydl[gpu-cuda13]' (CUDA 13) on a machine with an NVIDIA GPU") from error
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # pragma: no cover - depends on the machine
        raise RuntimeError(f"device 'cuda': CuPy is installed but no usable GPU was found ({error})") from error
    if count == 0:  # pragma: no cover
        raise RuntimeError("device 'cuda': CuPy is installed but no GPU was found")
    return cupy


def is_available(kind: str = "cuda") -> bool:
    """True when arrays can be placed on ``kind`` ("cpu" always; "cuda" when CuPy and a GPU are present)."""
    if kind == "cpu":
        return True
    try:
        _cupy()
    except RuntimeError:
        return False
    return True


def get_array_module(*values: Any) -> ModuleType:
    """The array module (``numpy`` or ``cupy``) of the first array or Tensor among ``values``; NumPy by default."""
    for value in values:
        array = getattr(value, "data", value) if not isinstance(value, numpy.ndarray) else value
        if isinstance(array, numpy.ndarray) or isinstance(array, numpy.generic):
            return numpy
        module = type(array).__module__
        if module.startswith("cupy"):
            return _cupy()
    return numpy


def is_array(value: Any) -> bool:
    """True for a NumPy array or scalar and for a CuPy array (checked without importing CuPy)."""
    return isinstance(value, (numpy.ndarray, numpy.generic)) or type(value).__module__.startswith("cupy")


def is_cupy(*arrays: Any) -> bool:
    """True when every one of ``arrays`` is a CuPy array (checked by class, without importing CuPy)."""
    return bool(arrays) and all(type(a).__module__.startswith("cupy") for a in arrays)


FUSED_KERNELS_VARIABLE = "TINYDL_FUSED_KERNELS"


def _fused_from_environment() -> bool:
    """The switch's initial state: off when ``TINYDL_FUSED_KERNELS`` is 0, false, no or off; on otherwise."""
    value = os.environ.get(FUSED_KERNELS_VARIABLE, "1").strip().lower()
    return value not in ("0", "false", "no", "off")


_fused_kernels = _fused_from_environment()


def fused_kernels_enabled() -> bool:
    """Whether the fused CUDA kernels may replace the plain path on CuPy arrays (the library-wide switch)."""
    return _fused_kernels


class set_fused_kernels:
    """Turn the fused CUDA kernels on or off for the whole library.

    ``set_fused_kernels(False)`` switches them off until switched on again; ``with set_fused_kernels(False):``
    switches them off for the block only and restores the previous state afterwards.
    """

    def __init__(self, enabled: bool):
        global _fused_kernels
        if not isinstance(enabled, bool):
            raise TypeError(f"set_fused_kernels: expected True or False, got {enabled!r}")
        self.previous = _fused_kernels
        _fused_kernels = enabled

    def __enter__(self) -> "set_fused_kernels":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        global _fused_kernels
        _fused_kernels = self.previous


def device_of(array: Any) -> Device:
    """The Device that holds a raw array."""
    if isinstance(array, (numpy.ndarray, numpy.generic)):
        return CPU
    if type(array).__module__.startswith("cupy"):
        return Device("cuda", array.device.id)
    raise TypeError(f"device_of: not an array: {type(array).__name__}")


def to_device(array: Any, target: "str | Device") -> Any:
    """Copy a raw array to ``target`` (no copy when it is already there)."""
    target = device(target)
    if target.type == "cpu":
        if isinstance(array, numpy.ndarray):
            return array
        return array.get() if hasattr(array, "get") else numpy.asarray(array)
    cupy = _cupy()
    if isinstance(array, cupy.ndarray) and array.device.id == target.index:
        return array
    with cupy.cuda.Device(target.index):
        return cupy.asarray(array)


def array_module_for(target: "str | Device") -> ModuleType:
    """The array module that allocates on ``target``."""
    return numpy if device(target).type == "cpu" else _cupy()


_NO_SCOPE = contextlib.nullcontext()


def device_scope(where: Any) -> Any:
    """A context in which CuPy allocates on, and runs kernels on, the GPU of ``where`` (a Device, a device string,
    or a raw array); a no-op for the CPU. CuPy works on the *current* device, so every GPU computation of tinydl
    runs inside the scope of the device its data lives on: without it, "cuda:1" work would land on GPU 0."""
    if isinstance(where, (numpy.ndarray, numpy.generic)):
        return _NO_SCOPE
    if isinstance(where, (str, Device)):
        target = device(where)
        return _NO_SCOPE if target.type == "cpu" else _cupy().cuda.Device(target.index)
    if type(where).__module__.startswith("cupy"):
        return _cupy().cuda.Device(where.device.id)
    return _NO_SCOPE
