"""How many images a kernel processes at once: the one place where the CPU and the GPU strategies differ.

On a CPU the matrices of im2col are large (a batch of 64 CIFAR images through a 64->128 3x3 convolution gives a
37 MB column matrix) and memory bandwidth, not arithmetic, limits the speed. Cutting the batch into chunks whose
columns fit in the core's L2 cache (a few MB) lets each chunk be written by im2col, read by the matrix product and
read again by col2im while it is still in cache: measured here, that is about twice as fast as one big matrix.

On a GPU the opposite holds: one large launch keeps thousands of threads busy, so the whole batch is one chunk.
"""
from __future__ import annotations

from types import ModuleType
from typing import Iterator

__all__ = ["CPU_CHUNK_BYTES", "batch_chunks"]

CPU_CHUNK_BYTES = 3 * 2**20  # per-chunk working set on a CPU: about the size of one core's L2 cache


def batch_chunks(batch: int, bytes_per_image: int, xp: ModuleType) -> Iterator[slice]:
    """Consecutive slices that cover ``range(batch)``, each as large as the backend ``xp`` processes best given
    that one image needs ``bytes_per_image`` bytes of scratch space."""
    if xp.__name__ == "numpy":
        size = max(1, min(batch, CPU_CHUNK_BYTES // max(1, bytes_per_image)))
    else:
        size = max(1, batch)
    for start in range(0, batch, size):
        yield slice(start, min(start + size, batch))
