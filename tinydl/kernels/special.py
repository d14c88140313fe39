"""Special functions NumPy lacks, written with array operations only (so they run on NumPy and CuPy alike).

``erf`` is needed by the exact GELU, and :func:`gelu_and_cdf` computes that activation in cache-sized blocks.
Float32 inputs use the Abramowitz & Stegun 7.1.26 rational approximation
(absolute error below 1.5e-7, i.e. float32 rounding); float64 inputs, used by gradient checks, get full double
precision from the Maclaurin series for |x| < 2.5 and the Laplace continued fraction of erfc beyond.
"""
from __future__ import annotations

import math
from typing import Any

from ..backend import get_array_module

_SERIES_TERMS = 45        # the Maclaurin series for |x| < 2.5 has converged to 1e-17 by then
_FRACTION_DEPTH = 80      # the continued fraction for |x| >= 2.5 has converged to 1e-16 by then
_SWITCH = 2.5


def erf(x: Any) -> Any:
    """erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt, elementwise, in the dtype of ``x``."""
    if x.dtype.itemsize <= 4:
        return _erf_rational(x)
    return _erf_double(x)


BLOCK = 2**15  # elements per block of gelu_and_cdf on a CPU: its work arrays (4 x 128 KB) stay in the L2 cache


def gelu_and_cdf(x: Any) -> tuple[Any, Any]:
    """The exact GELU y = x Phi(x) and the normal CDF Phi(x) = (1 + erf(x / sqrt 2)) / 2, both in x's dtype.

    Computed block by block (:data:`BLOCK` elements on a CPU, the whole array on a GPU): the ~20 element-wise passes
    of one block run on work arrays that stay in the cache, so the memory sees x read once and y and Phi written
    once, where the pass-by-pass form streams every temporary through memory (which, on a machine whose memory
    bus is shared with other jobs, is what takes the time)."""
    xp = get_array_module(x)
    flat = xp.ascontiguousarray(x).reshape(-1)
    y, cdf = xp.empty_like(flat), xp.empty_like(flat)
    block = BLOCK if xp.__name__ == "numpy" else max(1, flat.size)
    work = xp.empty((3, min(block, flat.size)), flat.dtype)
    scale = flat.dtype.type(1 / math.sqrt(2))
    for start in range(0, flat.size, block):
        stop = min(start + block, flat.size)
        scaled, t, decay = work[:, :stop - start]
        xp.multiply(flat[start:stop], scale, out=scaled)
        if flat.dtype.itemsize <= 4:
            _erf_rational_into(xp, scaled, cdf[start:stop], t, decay)
        else:
            xp.copyto(cdf[start:stop], _erf_double(scaled))
        cdf[start:stop] += 1
        cdf[start:stop] *= flat.dtype.type(0.5)
        xp.multiply(flat[start:stop], cdf[start:stop], out=y[start:stop])
    return y.reshape(x.shape), cdf.reshape(x.shape)


def _erf_rational(x: Any) -> Any:
    """A&S 7.1.26 on a whole array (see :func:`_erf_rational_into`)."""
    xp = get_array_module(x)
    flat = x.reshape(-1)                           # 1-D, so that 0-d inputs stay arrays for the out= calls
    out = xp.empty_like(flat)
    _erf_rational_into(xp, flat, out, xp.empty_like(flat), xp.empty_like(flat))
    return out.reshape(x.shape)


def _erf_rational_into(xp: Any, x: Any, out: Any, t: Any, decay: Any) -> None:
    """``out`` = erf(x) by A&S 7.1.26: erf(x) ~ 1 - (a1 t + ... + a5 t^5) e^(-x^2) with t = 1 / (1 + p|x|), odd
    extension; ``t`` and ``decay`` are work arrays of x's size."""
    a1, a2, a3, a4, a5, p = 0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429, 0.3275911
    xp.abs(x, out=t)
    xp.multiply(t, t, out=decay)
    xp.negative(decay, out=decay)
    xp.exp(decay, out=decay)                       # e^(-x^2)
    t *= p
    t += 1.0
    xp.reciprocal(t, out=t)                        # t = 1 / (1 + p|x|)
    xp.multiply(t, a5, out=out)
    for coefficient in (a4, a3, a2, a1):
        out += coefficient
        out *= t                                   # Horner: ((a5 t + a4) t + ...) t
    out *= decay
    xp.subtract(1.0, out, out=out)
    xp.copysign(out, x, out=out)


def _erf_double(x: Any) -> Any:
    xp = get_array_module(x)
    magnitude = xp.abs(x)
    small = magnitude < _SWITCH
    # Maclaurin: erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
    z = xp.where(small, x, 0.0)
    z2 = z * z
    term = z.copy()            # (-1)^n x^(2n+1) / n!
    series = z.copy()
    for n in range(1, _SERIES_TERMS):
        term = term * (-z2 / n)
        series = series + term / (2 * n + 1)
    series = series * (2.0 / math.sqrt(math.pi))
    # erfc(y) = e^(-y^2)/sqrt(pi) * 1/(y + (1/2)/(y + 1/(y + (3/2)/(y + ...)))), evaluated from the bottom up
    y = xp.where(small, _SWITCH, magnitude)
    tail = y.copy()
    for k in range(_FRACTION_DEPTH, 0, -1):
        tail = y + (k / 2.0) / tail
    erfc = xp.exp(-y * y) / (math.sqrt(math.pi) * tail)
    return xp.where(small, series, xp.sign(x) * (1.0 - erfc))
