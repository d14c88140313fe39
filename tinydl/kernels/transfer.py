"""Moving a batch to the GPU: one host-to-device copy per batch, from pinned (page-locked) host memory.

A batch has several fields (images, labels, masks). Copying each one separately costs one transfer call each, and
copying from ordinary pageable memory makes the driver stage the bytes through a pinned buffer of its own first.
Here the fields are packed into one pinned buffer, each at an offset aligned to 256 bytes, that buffer crosses in
one copy, and the fields are views of the device copy, reinterpreted in their dtype and shape.

The copy from pinned memory may run asynchronously to the host (CuPy queues it on the stream), so the host
buffer must outlive it: the last few staging buffers are kept alive (``_STAGED``), long after their copies, which
the stream orders before any kernel of the following steps, have finished.
"""
from __future__ import annotations

import collections
from typing import Any, Sequence

from ..backend import Device, _cupy, device_scope

_ALIGNMENT = 256
_STAGED: "collections.deque[Any]" = collections.deque(maxlen=16)


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGNMENT) * _ALIGNMENT


def batch_to_gpu(arrays: Sequence[Any], target: Device) -> list[Any]:
    """Host (NumPy) arrays -> CuPy arrays on ``target`` with the same dtypes and shapes, in one copy."""
    import cupyx
    cupy = _cupy()
    offsets, end = [], 0
    for array in arrays:
        offsets.append(_aligned(end))
        end = offsets[-1] + array.nbytes
    staging = cupyx.empty_pinned(max(end, 1), dtype="uint8")
    for array, offset in zip(arrays, offsets):
        staging[offset:offset + array.nbytes].view(array.dtype)[...] = array.reshape(-1)
    _STAGED.append(staging)
    with device_scope(target):
        device_bytes = cupy.asarray(staging)
        return [device_bytes[offset:offset + array.nbytes].view(array.dtype).reshape(array.shape)
                for array, offset in zip(arrays, offsets)]
