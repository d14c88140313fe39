"""Intra-op parallelism on the CPU: a large element-wise kernel split across threads, as PyTorch's
``at::parallel_for`` splits its loops.

NumPy runs every ufunc and copy on one core, but it releases the GIL inside its loops (for more than a few hundred
elements), so threads that each work on their own slice of an array run on separate cores at the same time. The
matrix products already use every core (the BLAS has its own threads); the memory-bound passes between them (ReLU,
max pooling, their gradients) are what :func:`parallel_for` spreads. Measured on the 2-core development machine,
batch 64 of the CNN's first layer (4M float32 numbers): ReLU forward 2.26 -> 1.32 ms, its backward 2.02 -> 1.27
ms, max-pool forward 4.2 -> 3.2 ms, max-pool backward 10.9 -> 4.4 ms. Inside the CNN's training step and its
inference they gain nothing measurable there (0.99-1.02, ``benchmarks/ab_threads.py``): after each matrix product
OpenBLAS's idle threads spin on their cores for about 0.1 s, and a product is never that far away.

How many threads: :func:`set_num_threads`, else the BLAS's own count (:func:`blas_threads`), so that one setting
(``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``) governs both. Work smaller than :data:`MIN_PARALLEL_BYTES` runs in
the calling thread: handing a slice to another thread costs tens of microseconds. Only NumPy work is split (a GPU
runs each kernel on all of its cores already), and a slice never splits again: work started inside a worker thread
runs in that thread, so no thread ever waits for a slot held by its own caller.

The slices run concurrently, so a kernel passed to :func:`parallel_for` must write only inside its own slice, and
keeps its scratch memory per thread (:mod:`.scratch` does). Each slice runs in a copy of the caller's
``contextvars`` context, so NumPy's ``np.errstate`` (a context variable) holds in the workers as in the caller.
"""
from __future__ import annotations

import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

__all__ = ["parallel_for", "thread_count", "set_num_threads", "get_num_threads", "blas_threads", "MIN_PARALLEL_BYTES"]

MIN_PARALLEL_BYTES = 2**20  # below 1 MiB of work, a hand-off to another thread costs more than it saves


def blas_threads() -> int:
    """How many threads NumPy's BLAS was started with, as its environment variables say (every core when none is
    set): OpenBLAS reads ``OPENBLAS_NUM_THREADS``, then ``OMP_NUM_THREADS``; MKL ``MKL_NUM_THREADS``."""
    for variable in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "")
        if value.strip().isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


class _State(threading.local):
    def __init__(self) -> None:
        self.in_worker = False


_state = _State()
_threads: int | None = None  # None: follow blas_threads()
_executor: ThreadPoolExecutor | None = None
_executor_size = 0
_executor_lock = threading.Lock()


def set_num_threads(count: int | None) -> None:
    """Use ``count`` threads (at least 1) for the element-wise kernels; None: the BLAS's count again. The BLAS's
    own threads are set by its environment variables, before NumPy is imported."""
    global _threads
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise ValueError(f"set_num_threads: expected a positive int or None, got {count!r}")
    _threads = count


def get_num_threads() -> int:
    """How many threads the element-wise kernels use."""
    return blas_threads() if _threads is None else _threads


def _worker_pool(size: int) -> ThreadPoolExecutor:
    """The process's worker threads, at least ``size`` of them (started when first needed)."""
    global _executor, _executor_size
    with _executor_lock:
        if _executor is None or _executor_size < size:
            if _executor is not None:
                _executor.shutdown(wait=False)
            _executor = ThreadPoolExecutor(size, thread_name_prefix="tinydl-intraop",
                                           initializer=lambda: setattr(_state, "in_worker", True))
            _executor_size = size
        return _executor


def _forget_pool_after_fork() -> None:
    """A forked child (a DataLoader worker process) has none of the parent's threads: start afresh."""
    global _executor, _executor_size, _executor_lock
    _executor, _executor_size, _executor_lock = None, 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def thread_count(xp: Any, length: int, bytes_per_item: int) -> int:
    """How many threads :func:`parallel_for` would use for this work: 1 unless ``xp`` is NumPy, the work
    (``length * bytes_per_item`` bytes) is large enough and the caller is not a worker itself. The cheap tests come
    first: this runs on every call of the kernels that use it, most of them on small arrays."""
    if xp.__name__ != "numpy" or length * bytes_per_item < MIN_PARALLEL_BYTES or _state.in_worker:
        return 1
    return min(get_num_threads(), length)


def parallel_for(xp: Any, length: int, work: Callable[[slice], None], bytes_per_item: int) -> None:
    """Call ``work(part)`` for consecutive slices ``part`` that cover ``range(length)``: one slice per thread when
    :func:`thread_count` says so, else one slice in the calling thread. Returns when every slice is done; the first
    exception raised by a slice is raised here."""
    threads = thread_count(xp, length, bytes_per_item)
    if threads < 2:
        work(slice(0, length))
        return
    bounds = [length * k // threads for k in range(threads + 1)]
    parts = [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]
    # each slice runs in a copy of the caller's context, so that context-local settings such as np.errstate apply
    pending = [_worker_pool(threads - 1).submit(contextvars.copy_context().run, work, part) for part in parts[1:]]
    try:
        work(parts[0])
    finally:
        for future in pending:
            future.exception()  # wait for every slice before anything is raised or returned
    for future in pending:
        future.result()
