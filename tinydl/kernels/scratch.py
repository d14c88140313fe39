"""Scratch memory that CPU kernels keep from one call to the next.

A kernel's scratch arrays (im2col's patch matrix, the padded copy of the images, the taps of a pooling window)
live only during the call. Allocated afresh each time, a large one costs more than the work done in it: glibc
hands memory of more than a few megabytes back to the operating system when it is freed (``munmap``, or a trim
of the heap's top), and the next allocation takes one page fault per 4 KiB page when it is first written. On
the machine this was measured on, a page fault costs about 2.9 us, so writing a fresh 16 MiB array took 11.8 ms
against 0.34 ms for the same array written a second time; in the CNN's training step, 4,700 faults per step
cost more than 10% of its time.

So each thread keeps one buffer per *role* (a name such as ``"conv.patches"``), grown to the largest size asked
for and reused for every later request of that role. Two arrays of the same role must never be alive at once;
a kernel names each of its scratch arrays differently, and no scratch array leaves the kernel that asked for it
(results are always fresh arrays). Requests larger than :data:`MAX_KEPT_BYTES` are not kept.

On a GPU nothing is kept here: CuPy's memory pool already reuses device memory without any system call.
"""
from __future__ import annotations

import threading
from math import prod
from typing import Any, Sequence

__all__ = ["scratch", "MAX_KEPT_BYTES", "kept_bytes", "release"]

MAX_KEPT_BYTES = 64 * 2**20  # per role and thread; kernels cut their work into chunks far smaller than this


class _Buffers(threading.local):
    def __init__(self) -> None:
        self.by_role: dict[str, Any] = {}


_buffers = _Buffers()


def scratch(xp: Any, role: str, shape: Sequence[int], dtype: Any, zeroed: bool = False) -> Any:
    """An uninitialised (or, with ``zeroed``, zero-filled) C-contiguous array of ``shape`` and ``dtype`` for the
    array module ``xp``: on NumPy a view of this thread's buffer for ``role``, valid until the next request of
    the same role; elsewhere a fresh array."""
    if xp.__name__ != "numpy":
        return (xp.zeros if zeroed else xp.empty)(tuple(shape), dtype)
    dtype = xp.dtype(dtype)
    nbytes = prod(shape) * dtype.itemsize
    if nbytes > MAX_KEPT_BYTES:
        return (xp.zeros if zeroed else xp.empty)(tuple(shape), dtype)
    buffer = _buffers.by_role.get(role)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = _buffers.by_role[role] = xp.empty(max(nbytes, 1), xp.uint8)
    array = buffer[:nbytes].view(dtype).reshape(tuple(shape))
    if zeroed:
        array.fill(0)
    return array


def kept_bytes() -> int:
    """How many bytes of scratch memory the calling thread keeps."""
    return sum(buffer.nbytes for buffer in _buffers.by_role.values())


def release() -> None:
    """Drop the calling thread's scratch buffers (their memory goes back to the allocator)."""
    _buffers.by_role.clear()
