"""``cupy.cuda.runtime`` on the double: the device count (two pretend GPUs) and CUDA's error type."""
from __future__ import annotations

from .._double import DEVICE_COUNT


class CUDARuntimeError(RuntimeError):
    pass


def getDeviceCount() -> int:
    return DEVICE_COUNT


def getDevice() -> int:
    from .._double import state
    return state.device


def deviceSynchronize() -> None:
    pass
