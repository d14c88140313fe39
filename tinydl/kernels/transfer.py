"""Moving a batch to the GPU: one host-to-device copy per batch, from pinned (page-locked) host memory.

A batch has several fields (images, labels, masks). Copying each one separately costs one transfer call each, and
copying from ordinary pageable memory makes the driver stage the bytes through a pinned buffer of its own first.
Here the fields are packed into one pinned buffer, each at an offset aligned to 256 bytes, that buffer crosses in
one copy, and the fields are views of the device copy, reinterpreted in their dtype and shape.

The copy from pinned memory runs asynchronously to the host (``cupy.asarray`` queues it on the current stream
and returns), so the host buffer must outlive it: each staging buffer is kept with an event recorded after its
copy, and let go once the event has completed (``Event.done`` asks the driver without waiting). This is what CuPy
does for its own pinned staging (its pinned-memory "watch list").
"""
from __future__ import annotations

from typing import Any, Sequence

from ..backend import Device, _cupy, device_scope

_ALIGNMENT = 256
_in_flight: list[tuple[Any, Any]] = []  # (event after the copy, the pinned host buffer it reads)


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
    with device_scope(target):
        device_bytes = cupy.asarray(staging)
        _keep_until_copied(cupy, staging)
        return [device_bytes[offset:offset + array.nbytes].view(array.dtype).reshape(array.shape)
                for array, offset in zip(arrays, offsets)]


def _keep_until_copied(cupy: Any, staging: Any) -> None:
    """Hold ``staging`` until the copy just queued has run; release the buffers whose copies have."""
    _in_flight[:] = [(event, buffer) for event, buffer in _in_flight if not event.done]
    _in_flight.append((cupy.cuda.get_current_stream().record(), staging))
