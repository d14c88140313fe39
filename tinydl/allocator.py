"""Host memory: telling the C allocator to keep what the program frees, for programs that own their process.

Every NumPy array lives in memory from the C library's ``malloc``. glibc hands a large freed block straight back to
the operating system (it was ``mmap``-ed, or it sat at the top of the heap, which is trimmed), and the next array
of that size then takes one page fault per 4 KiB page as it is first written: the kernel maps and zeroes each page
again. A training step allocates and frees the same large arrays every time (activations, their gradients, the
tensors saved for backward), so it pays those faults on every step. On the 2-core development machine a fault
cost about 2.9 us; the char-LSTM's step took 6,400 of them (about 19 ms of 97), and with the setting below its
step went from 86-105 to 72-76 ms (PyTorch's, whose CPU tensors come from the same ``malloc``, from 81-85 to 72).
(Since then :func:`tinydl.functional.lstm_layer` allocates two large arrays fewer per step, and the char-LSTM
takes a few faults per step even without this setting.)

:func:`keep_freed_memory` raises glibc's two thresholds (``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``), so that
freed blocks stay in the process for the next allocation, as the environment variables ``MALLOC_MMAP_THRESHOLD_``
and ``MALLOC_TRIM_THRESHOLD_`` would have done at start-up. The cost: the process's resident memory stays at its
peak until it exits (the peak itself does not grow). It is a choice for the whole process, so tinydl never makes
it on import; the example scripts make it when run as programs. Elsewhere than glibc it does nothing.
"""
from __future__ import annotations

import ctypes

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
_LARGEST = 2**31 - 1  # mallopt takes an int


def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep the memory this process frees instead of returning it to the operating system
    (see the module's docstring for why and what it costs). Returns True when it did, False where there is no
    glibc ``mallopt`` (macOS, Windows, musl)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _LARGEST)) and bool(mallopt(_M_TRIM_THRESHOLD, _LARGEST))
