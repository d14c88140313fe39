"""``cupy.cuda.nccl`` on the double: NCCL for a group of one rank, with CuPy's names and call signatures.

What tinydl.distributed calls: ``get_unique_id()`` (an opaque tuple of 128 small ints that rank 0 hands out),
``NcclCommunicator(ndev, unique_id, rank)``, and its ``allReduce(send, recv, count, datatype, op, stream)``,
``bcast(buff, count, datatype, root, stream)`` and ``allGather(send, recv, count, datatype, stream)``, which take
device pointers as ints (``array.data.ptr``), counts in elements and NCCL's datatype and operation codes.

For one rank every collective is what NCCL computes for one rank: a copy of ``count`` elements from the send
buffer to the receive buffer (none when they coincide). Pointers on the double are the host addresses of its
arrays, so the copy is a ``memmove``: a count or datatype that does not match the arrays shows up as wrong data.
A group of more than one rank cannot exist in one process (real NCCL would wait for the peers): it is refused.
"""
from __future__ import annotations

import ctypes
import secrets
from typing import Any

available = True

NCCL_INT8, NCCL_UINT8, NCCL_INT32, NCCL_UINT32, NCCL_INT64, NCCL_UINT64 = 0, 1, 2, 3, 4, 5
NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64 = 6, 7, 8
NCCL_SUM, NCCL_PROD, NCCL_MAX, NCCL_MIN = 0, 1, 2, 3
_ITEM_BYTES = {0: 1, 1: 1, 2: 4, 3: 4, 4: 8, 5: 8, 6: 2, 7: 4, 8: 8}


class NcclError(RuntimeError):
    pass


def get_unique_id() -> tuple[int, ...]:
    return tuple(byte - 128 for byte in secrets.token_bytes(128))


class NcclCommunicator:
    def __init__(self, ndev: int, commId: Any, rank: int) -> None:
        if not (isinstance(commId, tuple) and len(commId) == 128):
            raise NcclError("NCCL_ERROR_INVALID_ARGUMENT: the unique id is not one from get_unique_id()")
        if ndev != 1 or rank != 0:
            raise NcclError(f"the CuPy double runs one process: a group of {ndev} ranks (this one {rank}) would "
                            f"wait for peers that never come")
        from . import Device
        self._device = Device().id

    @staticmethod
    def _copy(send: int, receive: int, count: int, datatype: int) -> None:
        if datatype not in _ITEM_BYTES:
            raise NcclError(f"NCCL_ERROR_INVALID_ARGUMENT: unknown datatype {datatype}")
        if send != receive:
            ctypes.memmove(receive, send, count * _ITEM_BYTES[datatype])

    def allReduce(self, sendbuf: int, recvbuf: int, count: int, datatype: int, op: int, stream: int) -> None:
        if op not in (NCCL_SUM, NCCL_PROD, NCCL_MAX, NCCL_MIN):
            raise NcclError(f"NCCL_ERROR_INVALID_ARGUMENT: unknown reduction {op}")
        self._copy(sendbuf, recvbuf, count, datatype)

    def bcast(self, buff: int, count: int, datatype: int, root: int, stream: int) -> None:
        if root != 0:
            raise NcclError(f"NCCL_ERROR_INVALID_ARGUMENT: root {root} is not a rank of a group of 1")
        self._copy(buff, buff, count, datatype)

    def allGather(self, sendbuf: int, recvbuf: int, count: int, datatype: int, stream: int) -> None:
        self._copy(sendbuf, recvbuf, count, datatype)

    def device_id(self) -> int:
        return self._device

    def rank_id(self) -> int:
        return 0

    def size(self) -> int:
        return 1
