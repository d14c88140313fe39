"""``cupy.cuda`` on the double: devices (two pretend GPUs), the memory pools, memory hooks, pinned host memory,
streams; what tinydl needs of it, with CuPy's names and behaviour.

* ``Device(i)`` is a context manager that makes GPU ``i`` current for the thread; arrays allocated inside record
  it. ``Device()`` is the current device. An index outside ``range(getDeviceCount())`` raises as CUDA does.
* ``MemoryPool`` counts the bytes of live device arrays per device (in 512-byte blocks, as CuPy's pool), keeps
  freed blocks cached until ``free_all_blocks()``; ``used_bytes()`` / ``total_bytes()`` / ``free_bytes()`` report
  the current device.
* ``MemoryHook`` subclasses entered as context managers see ``malloc_postprocess`` / ``free_postprocess`` calls.
"""
from __future__ import annotations

import time
from typing import Any

import numpy

from .. import _double
from .._double import DEVICE_COUNT, state
from . import runtime


class Device:
    """A GPU of the double; ``with Device(1):`` makes it current."""

    def __init__(self, device: Any = None):
        if device is None:
            device = state.device
        device = int(getattr(device, "id", device))
        if not 0 <= device < DEVICE_COUNT:
            raise runtime.CUDARuntimeError(f"cudaErrorInvalidDevice: invalid device ordinal ({device})")
        self.id = device
        self._previous: list[int] = []

    def __enter__(self) -> "Device":
        self._previous.append(state.device)
        state.device = self.id
        return self

    def __exit__(self, *exc: Any) -> None:
        state.device = self._previous.pop()

    def use(self) -> None:
        state.device = self.id

    def synchronize(self) -> None:
        """Explicitly wait for the device (an explicit sync, not an implicit transfer: not counted)."""

    @property
    def compute_capability(self) -> str:
        return "90"

    @property
    def mem_info(self) -> tuple[int, int]:
        total = 80 << 30
        return total - _double.memory.used[self.id] - _double.memory.free[self.id], total

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id}>"


def get_device_id() -> int:
    return state.device


class MemoryPool:
    """CuPy's device memory pool: ``used_bytes`` (held by live arrays), ``free_bytes`` (cached), per device."""

    def used_bytes(self) -> int:
        return _double.memory.used[state.device]

    def free_bytes(self) -> int:
        return _double.memory.free[state.device]

    def total_bytes(self) -> int:
        return self.used_bytes() + self.free_bytes()

    def free_all_blocks(self, stream: Any = None) -> None:
        _double.memory.free[state.device] = 0

    def n_free_blocks(self) -> int:
        return _double.memory.free[state.device] // _double.POOL_ROUNDING

    def set_limit(self, size: Any = None, fraction: Any = None) -> None:
        self._limit = size or 0

    def get_limit(self) -> int:
        return getattr(self, "_limit", 0)

    def malloc(self, size: int) -> Any:
        raise NotImplementedError("the CuPy double's memory pool does not hand out raw pointers")

    free_all_free = free_all_blocks


class PinnedMemoryPool:
    def free_all_blocks(self) -> None:
        pass

    def n_free_blocks(self) -> int:
        return 0

    def malloc(self, size: int) -> Any:
        return alloc_pinned_memory(size)


_DEFAULT_POOL = MemoryPool()
_DEFAULT_PINNED_POOL = PinnedMemoryPool()


class MemoryHook:
    """Base class of memory hooks: ``with MyHook():`` receives the pool's malloc/free events in this thread."""

    name = "MemoryHook"

    def __enter__(self) -> "MemoryHook":
        _double.memory.hooks.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _double.memory.hooks.remove(self)

    def malloc_preprocess(self, **kwargs: Any) -> None:
        pass

    def malloc_postprocess(self, **kwargs: Any) -> None:
        pass

    def free_preprocess(self, **kwargs: Any) -> None:
        pass

    def free_postprocess(self, **kwargs: Any) -> None:
        pass


def alloc_pinned_memory(size: int) -> Any:
    """Pinned (page-locked) host memory: a NumPy byte buffer here, remembered as pinned for the counters."""
    return _double.register_pinned(numpy.empty(size, dtype=numpy.uint8))


class Event:
    """A CUDA event; work on the double is synchronous, so every recorded event is already done, at the host
    time of its ``record()`` (what :func:`get_elapsed_time` compares)."""

    done = True

    def __init__(self, block: bool = False, disable_timing: bool = False, interprocess: bool = False):
        self.time_ns: int | None = None

    def record(self, stream: Any = None) -> None:
        self.time_ns = time.perf_counter_ns()

    def synchronize(self) -> None:
        pass


def get_elapsed_time(start_event: Event, end_event: Event) -> float:
    """Milliseconds between two recorded events (CuPy raises for an event never recorded, and so does this)."""
    if start_event.time_ns is None or end_event.time_ns is None:
        raise RuntimeError("cudaErrorInvalidResourceHandle: an event was not recorded")
    return (end_event.time_ns - start_event.time_ns) / 1e6


class Stream:
    """A CUDA stream; work on the double is synchronous, so streams only keep CuPy's interface."""

    null: "Stream"

    def __init__(self, null: bool = False, non_blocking: bool = False, ptds: bool = False):
        self.ptr = 0

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def use(self) -> "Stream":
        return self

    def record(self, event: Event | None = None) -> Event:
        return event or Event()


Stream.null = Stream(null=True)


def get_current_stream(device_id: int = -1) -> Stream:
    return Stream.null


def is_available() -> bool:
    return True


def __getattr__(name: str) -> Any:
    if name in _double.NAMES["cupy.cuda"]:
        raise NotImplementedError(f"the CuPy double does not implement cupy.cuda.{name}")
    raise AttributeError(f"module 'cupy.cuda' has no attribute {name!r}")
