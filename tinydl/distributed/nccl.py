"""NCCL between GPUs, for CuPy arrays (``cupy.cuda.nccl``), with MPI only to start it.

NCCL moves GPU memory between GPUs directly (NVLink, PCIe, InfiniBand) without a trip through the host. A group
of ranks is created from a *unique id*, an opaque token that rank 0 draws with ``nccl.get_unique_id()``; MPI
broadcasts it (a few hundred bytes, pickled), and every rank then builds its ``NcclCommunicator(size, id, rank)``
on the GPU that holds its arrays. One communicator is kept per GPU and reused. Each rank must use its own GPU:
NCCL refuses two ranks of one group on the same device.

The calls are enqueued on CuPy's current stream, in the order every rank issues them, like the MPI collectives.
"""
from __future__ import annotations

from typing import Any

from .world import World

__all__ = ["NcclGroup", "nccl_available", "group_for"]

_NCCL_TYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
               "int8": "NCCL_INT8", "uint8": "NCCL_UINT8", "int32": "NCCL_INT32", "int64": "NCCL_INT64"}


def _nccl_module() -> Any:
    """``cupy.cuda.nccl`` when CuPy can load the NCCL library, else a RuntimeError that says what to install."""
    try:
        from cupy.cuda import nccl
    except ImportError as error:
        nccl, reason = None, str(error)
    else:
        reason = "cupy.cuda.nccl.available is False"
    if nccl is None or not getattr(nccl, "available", False):
        raise RuntimeError(
            f"tinydl.distributed: arrays on a GPU (CuPy) are exchanged through NCCL, which CuPy cannot load here "
            f"({reason}). Install NCCL where CuPy looks for it: python -m cupyx.tools.install_library --library "
            f"nccl --cuda 12.x (CuPy's pip wheels), or the system's libnccl2, or pip install nvidia-nccl-cu12 with "
            f"its lib directory on LD_LIBRARY_PATH; or train on the CPU, where MPI does the exchange")
    return nccl


def nccl_available() -> bool:
    try:
        _nccl_module()
    except RuntimeError:
        return False
    return True


class NcclGroup:
    """Every rank of ``world``, joined by NCCL on GPU ``device_id``."""

    def __init__(self, world: World, device_id: int) -> None:
        import cupy
        self._nccl = nccl = _nccl_module()
        unique_id = nccl.get_unique_id() if world.rank == 0 else None
        if world.comm is not None and world.size > 1:
            unique_id = world.comm.bcast(unique_id, root=0)
        self.device_id = device_id
        with cupy.cuda.Device(device_id):
            self._communicator = nccl.NcclCommunicator(world.size, unique_id, world.rank)

    def _type(self, array: Any) -> int:
        name = _NCCL_TYPES.get(array.dtype.name)
        if name is None:
            raise TypeError(f"tinydl.distributed (NCCL): arrays of dtype {array.dtype} cannot be exchanged; "
                            f"supported: {', '.join(_NCCL_TYPES)}")
        return getattr(self._nccl, name)

    @staticmethod
    def _stream() -> int:
        import cupy
        return cupy.cuda.get_current_stream().ptr

    def sum_into(self, send: Any, receive: Any) -> None:
        """receive <- the sum of every rank's ``send`` (C-contiguous, same shape and dtype everywhere; ``receive``
        may be ``send`` itself)."""
        self._communicator.allReduce(send.data.ptr, receive.data.ptr, send.size, self._type(send),
                                     self._nccl.NCCL_SUM, self._stream())

    def broadcast_in_place(self, array: Any, src: int) -> None:
        """array <- rank ``src``'s ``array``."""
        self._communicator.bcast(array.data.ptr, array.size, self._type(array), src, self._stream())

    def gather_into(self, send: Any, receive: Any) -> None:
        """receive[r] <- rank r's ``send`` (``receive`` has one row of ``send.size`` elements per rank)."""
        self._communicator.allGather(send.data.ptr, receive.data.ptr, send.size, self._type(send), self._stream())


_groups: dict[int, NcclGroup] = {}  # by GPU number; the world is joined once per process


def group_for(world: World, array: Any) -> NcclGroup:
    """The NCCL group of ``world`` on the GPU that holds ``array`` (created at first use: a collective call)."""
    device_id = array.device.id
    if device_id not in _groups:
        _groups[device_id] = NcclGroup(world, device_id)
    return _groups[device_id]
