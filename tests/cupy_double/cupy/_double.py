"""The machinery of the CuPy double: CuPy's names, the current device, transfer counters, and the two rules every
entry point applies to its arguments (no host arrays in device maths; all device arrays on the current device).

Everything the double knows about real CuPy comes from ``cupy_names.json``, generated from the installed package
by ``make_names.py``: a NumPy function is dispatched for a device array only when CuPy 14 has a function of that
name, so tinydl cannot pass its GPU tests by calling something CuPy lacks.
"""
from __future__ import annotations

import contextlib
import json
import pathlib
import threading
import weakref
from typing import Any, Callable

import numpy

NAMES: dict[str, Any] = json.loads((pathlib.Path(__file__).parents[1] / "cupy_names.json").read_text())
DEVICE_COUNT = 2  # two pretend GPUs, so that code which ignores "cuda:1" is caught allocating on GPU 0
POOL_ROUNDING = 512  # CuPy's memory pool hands out blocks in multiples of 512 bytes


class KernelUnavailable(RuntimeError):
    """Raised when a user CUDA kernel (ElementwiseKernel, RawKernel, fuse, ...) built on the double is called."""


# ------------------------------------------------------------------------------------------------- state
class _ThreadState(threading.local):
    device = 0           # the current device of this thread (CuPy's is per thread as well)
    sync_allowed = True  # cupyx.allow_synchronize


state = _ThreadState()


class Counters:
    """Transfers between host and device since the last :meth:`reset` (read by tests)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.device_to_host = 0          # implicit or explicit reads of device data on the host (each a sync)
        self.host_to_device = 0          # copies of host data onto a device
        self.pinned_host_to_device = 0   # ... of which came from pinned host memory (cupyx.empty_pinned)


counters = Counters()


@contextlib.contextmanager
def counting() -> Any:
    """``with cupy._double.counting() as c:`` counters reset on entry; read ``c.device_to_host`` afterwards."""
    counters.reset()
    yield counters


def device_to_host(what: str) -> None:
    """Record a device->host read (a synchronisation); refuse it inside ``cupyx.allow_synchronize(False)``."""
    if not state.sync_allowed:
        from cupyx import DeviceSynchronized
        raise DeviceSynchronized(f"Device synchronization was detected while disallowed ({what} on the CuPy "
                                 "double)")
    counters.device_to_host += 1


_pinned: set[int] = set()  # ids of the live host buffers made by cupyx.empty_pinned / alloc_pinned_memory


def register_pinned(array: numpy.ndarray) -> numpy.ndarray:
    _pinned.add(id(array))
    weakref.finalize(array, _pinned.discard, id(array))
    return array


def host_to_device(source: Any) -> None:
    counters.host_to_device += 1
    root = source
    while isinstance(root, numpy.ndarray) and root.base is not None:
        root = root.base
    if id(root) in _pinned:
        counters.pinned_host_to_device += 1


# ------------------------------------------------------------------------------------------------ memory
class DeviceMemory:
    """Bytes in use and cached per device, as CuPy's memory pool counts them (rounded to 512-byte blocks)."""

    def __init__(self) -> None:
        self.used = [0] * DEVICE_COUNT
        self.free = [0] * DEVICE_COUNT
        self.hooks: list[Any] = []  # entered cupy.cuda.MemoryHook objects
        self._tracked: set[int] = set()

    def allocate(self, buffer: numpy.ndarray, device: int) -> None:
        """Count ``buffer`` (a fresh NumPy allocation backing a device array) until it is garbage-collected."""
        if id(buffer) in self._tracked:
            return
        size = -(-buffer.nbytes // POOL_ROUNDING) * POOL_ROUNDING
        self._tracked.add(id(buffer))
        self.used[device] += size
        self.free[device] = max(0, self.free[device] - size)  # a cached block of the pool is reused first
        for hook in list(self.hooks):
            hook.malloc_postprocess(device_id=device, size=buffer.nbytes, mem_size=size, mem_ptr=id(buffer),
                                    pmem_id=0)
        weakref.finalize(buffer, self._release, id(buffer), device, size)

    def _release(self, key: int, device: int, size: int) -> None:
        self._tracked.discard(key)
        self.used[device] -= size
        self.free[device] += size  # back to the pool's cache, not to the driver
        for hook in list(self.hooks):
            hook.free_postprocess(device_id=device, mem_size=size, mem_ptr=key, pmem_id=0)


memory = DeviceMemory()


# --------------------------------------------------------------------------------------------- the rules
def unsupported(value: Any) -> TypeError:
    return TypeError(f"Unsupported type {type(value)}")


def is_scalar(value: Any) -> bool:
    """Python and NumPy scalars (and 0-d NumPy arrays, which CuPy reads as scalars) mix freely with device
    arrays."""
    return (isinstance(value, (bool, int, float, complex, numpy.generic))
            or (isinstance(value, numpy.ndarray) and value.ndim == 0))


def check_current_device(array: Any) -> None:
    """CuPy runs a kernel on the current device; an array that lives elsewhere needs peer access, which a
    machine may not have (and the result would be allocated on the current device anyway): refuse it."""
    if array._device != state.device:
        raise ValueError(f"The device where the array resides ({array._device}) is different from the current "
                         f"device ({state.device}). Peer access is unavailable between these devices.")


def unwrap(value: Any, *, allow_lists: bool = True) -> Any:
    """The NumPy data behind a device argument. Device arrays must be on the current device; host arrays are
    refused (CuPy never copies host data implicitly); scalars, dtypes, shapes and other plain values pass."""
    from ._ndarray import ndarray
    if isinstance(value, ndarray):
        check_current_device(value)
        return value._a
    if isinstance(value, numpy.ndarray):
        if value.ndim == 0:
            return value
        raise unsupported(value)
    if isinstance(value, (list, tuple)) and allow_lists:
        return type(value)(unwrap(item) for item in value)
    return value


def wrap(value: Any, outputs: dict[int, Any] | None = None) -> Any:
    """A NumPy result as a device array on the current device (NumPy scalars become 0-d arrays, as CuPy returns
    them); an ``out=`` array comes back as the very device array that was passed."""
    from ._ndarray import ndarray
    if outputs and id(value) in outputs:
        return outputs[id(value)]
    if isinstance(value, numpy.ndarray):
        return ndarray._adopt(value, state.device)
    if isinstance(value, numpy.generic):
        return ndarray._adopt(numpy.asarray(value), state.device)
    if isinstance(value, tuple):
        return tuple(wrap(item, outputs) for item in value)
    if isinstance(value, list):
        return [wrap(item, outputs) for item in value]
    return value


# Functions whose result's shape depends on the values: CuPy reads a count back to the host to allocate it.
DATA_DEPENDENT_SHAPE = frozenset({"nonzero", "argwhere", "flatnonzero", "compress", "extract", "unique"})


def device_function(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``cupy.<name>``: NumPy's function of that name applied to the device arrays' data, with the rules above."""
    syncs = name in DATA_DEPENDENT_SHAPE

    def call(*args: Any, **kwargs: Any) -> Any:
        if syncs or (name == "where" and len(args) == 1):
            device_to_host(f"cupy.{name} (its result's size is read on the host)")
        outputs = {}
        out = kwargs.get("out")
        if out is not None:
            outputs[id(unwrap(out))] = out
        result = function(*unwrap(args), **{key: unwrap(value) for key, value in kwargs.items()})
        return wrap(result, outputs)
    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"cupy.{name} on the CuPy double (NumPy's {name} on device data; see cupy/_double.py)"
    return call
