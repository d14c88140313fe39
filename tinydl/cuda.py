"""GPU helpers as PyTorch users know them from ``torch.cuda``, on CuPy's memory pool.

tinydl allocates device memory through CuPy's default memory pool: a freed array's block stays cached in the pool
for the next allocation of that size, so a training step allocates from the driver only in its first iterations.

* :func:`memory_allocated` - bytes held by live arrays on a device (the pool's ``used_bytes``);
* :func:`memory_reserved` - those plus the cached free blocks (``total_bytes``);
* :func:`max_memory_allocated` / :func:`reset_peak_memory_stats` - the peak of ``memory_allocated``. CuPy's pool
  keeps no peak, so tinydl follows it with a CuPy memory hook from the first call of either function on: the peak
  covers allocations made after that call, in the thread that made it (CuPy's hooks are per thread);
* :func:`empty_cache` - give the cached free blocks back to the driver;
* :func:`synchronize` - wait until the GPU has finished the work queued so far (timing needs it: CuPy returns
  before a kernel has run);
* :func:`device_count`, :func:`is_available`, :func:`current_device`, and ``with tinydl.cuda.device(1):`` to make a
  GPU current for code outside modules and ops (which enter their tensors' GPU themselves).

``device`` arguments take an index, ``"cuda:N"`` or a :class:`tinydl.Device`; ``None`` means the current GPU.
"""
from __future__ import annotations

from typing import Any

from .backend import Device, _cupy, device as as_device, is_available as _backend_is_available

__all__ = ["is_available", "device_count", "current_device", "device", "synchronize", "memory_allocated",
           "memory_reserved", "max_memory_allocated", "reset_peak_memory_stats", "empty_cache"]


def is_available() -> bool:
    """True when CuPy and at least one GPU are present."""
    return _backend_is_available("cuda")


def device_count() -> int:
    """The number of GPUs CuPy sees (0 without CuPy or a GPU)."""
    return _cupy().cuda.runtime.getDeviceCount() if is_available() else 0


def current_device() -> int:
    """The index of the current GPU."""
    return _cupy().cuda.Device().id


def _index(where: Any) -> int:
    if where is None:
        return current_device()
    if isinstance(where, int):
        return where
    target = as_device(where)
    if target.type != "cuda":
        raise ValueError(f"tinydl.cuda: expected a GPU ('cuda:N' or an index), got {where!r}")
    return target.index


class device:
    """``with tinydl.cuda.device(1):`` makes GPU 1 current inside the block (CuPy allocates and computes there)."""

    def __init__(self, where: Any):
        self._device = _cupy().cuda.Device(_index(where))

    def __enter__(self) -> Device:
        self._device.__enter__()
        return Device("cuda", self._device.id)

    def __exit__(self, *exc_info: Any) -> None:
        self._device.__exit__(*exc_info)


def synchronize(device: Any = None) -> None:
    """Wait until every kernel queued on the GPU has finished."""
    _cupy().cuda.Device(_index(device)).synchronize()


def _pool_query(device: Any, query: str) -> int:
    cupy = _cupy()
    with cupy.cuda.Device(_index(device)):
        return int(getattr(cupy.get_default_memory_pool(), query)())


def memory_allocated(device: Any = None) -> int:
    """Bytes of GPU memory held by live arrays (CuPy's pool rounds each allocation up to 512 bytes)."""
    return _pool_query(device, "used_bytes")


def memory_reserved(device: Any = None) -> int:
    """Bytes the pool holds from the driver: in use plus cached free blocks."""
    return _pool_query(device, "total_bytes")


_peak_tracker: Any = None


def _tracker() -> Any:
    """The memory hook that follows the peak of ``used_bytes`` per device (made and entered on first use)."""
    global _peak_tracker
    if _peak_tracker is None:
        cupy = _cupy()

        class PeakTracker(cupy.cuda.MemoryHook):
            name = "tinydl_peak"

            def __init__(self) -> None:
                self.peak: dict[int, int] = {}

            def malloc_postprocess(self, device_id: int, size: int, mem_size: int, mem_ptr: int,
                                   pmem_id: int) -> None:
                used = memory_allocated(device_id)
                if used > self.peak.get(device_id, 0):
                    self.peak[device_id] = used

        _peak_tracker = PeakTracker()
        _peak_tracker.__enter__()
    return _peak_tracker


def max_memory_allocated(device: Any = None) -> int:
    """The largest :func:`memory_allocated` seen since tracking began (see the module docstring) or since
    :func:`reset_peak_memory_stats`."""
    index = _index(device)
    tracker = _tracker()
    return max(tracker.peak.get(index, 0), memory_allocated(index))


def reset_peak_memory_stats(device: Any = None) -> None:
    """Start the peak over from the memory allocated now."""
    index = _index(device)
    _tracker().peak[index] = memory_allocated(index)


def empty_cache() -> None:
    """Return the pool's cached free blocks to the driver, on every GPU."""
    cupy = _cupy()
    for index in range(device_count()):
        with cupy.cuda.Device(index):
            cupy.get_default_memory_pool().free_all_blocks()
