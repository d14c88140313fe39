"""How many images a kernel processes at once: the one place where the CPU and the GPU strategies differ.

On a CPU the matrices of im2col are large (a batch of 64 CIFAR images through a 64->128 3x3 convolution gives a
37 MB column matrix), and copying them runs at the speed of memory, not of the cores: on the machine this was tuned
on, copies of up to 12 MB ran at about 20 GB/s (in cache) and copies of 24 MB or more at about 6 GB/s. Cutting the
batch into chunks whose scratch matrices stay well inside the cache lets each chunk be written by im2col and read
by the matrix product (or written by the product and read by col2im) while it is still in cache. The chunks must
not be too small either: each one costs a multi-threaded BLAS call, and on a machine busy with other processes
every call waits for its worker threads to be scheduled (measured there: 16 chunks of 3 MB took 3x longer than
6 chunks of 8 MB).

On a GPU the opposite holds: one large launch keeps thousands of threads busy, so the whole batch is one chunk.
"""
from __future__ import annotations

from types import ModuleType
from typing import Iterator

__all__ = ["CPU_CHUNK_BYTES", "batch_chunks"]

CPU_CHUNK_BYTES = 8 * 2**20  # scratch bytes per chunk on a CPU: well inside the cache, in few BLAS calls


def batch_chunks(batch: int, bytes_per_image: int, xp: ModuleType) -> Iterator[slice]:
    """Consecutive slices that cover ``range(batch)``, each as large as the backend ``xp`` processes best given
    that one image needs ``bytes_per_image`` bytes of scratch space."""
    if xp.__name__ == "numpy":
        size = max(1, min(batch, CPU_CHUNK_BYTES // max(1, bytes_per_image)))
    else:
        size = max(1, batch)
    for start in range(0, batch, size):
        yield slice(start, min(start + size, batch))
