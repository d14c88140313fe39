"""Fused inverted dropout: from uniform draws u (drawn by the device's generator), one kernel writes the mask and
the output.

    m = [u >= p] / (1 - p),   y = x m          (backward: dx = gy m, a plain product)
"""
from __future__ import annotations

from typing import Any

from .build import as_contiguous, empty, kernel, launch, real, register, size

__all__ = ["dropout_forward"]

DROPOUT = register("dropout", r"""
extern "C" __global__ void dropout_forward(const real* x, const float* uniform, real* mask, real* y, real p,
                                           real scale, long long n) {
    FOR_EACH_INDEX(i, n) {
        real keep = uniform[i] >= (float)p ? scale : (real)0;
        mask[i] = keep;
        y[i] = x[i] * keep;
    }
}
""")


def dropout_forward(x: Any, uniform: Any, p: float) -> tuple[Any, Any]:
    """(y, mask) of inverted dropout with drop probability ``p``, given float32 ``uniform`` draws of x's shape."""
    x, uniform = as_contiguous(x), as_contiguous(uniform)
    mask, y = empty(x), empty(x)
    launch(kernel(DROPOUT, x.dtype.name, "dropout_forward"), x.size,
           (x, uniform, mask, y, real(x, p), real(x, 1 / (1 - p)), size(x.size)))
    return y, mask
