"""Special functions NumPy lacks, written with array operations only (so they run on NumPy and CuPy alike).

``erf`` is needed by the exact GELU. Float32 inputs use the Abramowitz & Stegun 7.1.26 rational approximation
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


def _erf_rational(x: Any) -> Any:
    """A&S 7.1.26: erf(x) ~ 1 - (a1 t + ... + a5 t^5) e^(-x^2) with t = 1 / (1 + p|x|), odd extension.

    Evaluated in place on two work arrays (this runs on every GELU activation of a Transformer)."""
    xp = get_array_module(x)
    a1, a2, a3, a4, a5, p = 0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429, 0.3275911
    shape, x = x.shape, x.reshape(-1)              # 1-D, so that 0-d inputs stay arrays for the out= calls
    t = xp.abs(x)
    decay = xp.multiply(t, t)
    xp.negative(decay, out=decay)
    xp.exp(decay, out=decay)                       # e^(-x^2)
    t *= p
    t += 1.0
    xp.reciprocal(t, out=t)                        # t = 1 / (1 + p|x|)
    poly = t * a5
    for coefficient in (a4, a3, a2, a1):
        poly += coefficient
        poly *= t                                  # Horner: ((a5 t + a4) t + ...) t
    poly *= decay
    xp.subtract(1.0, poly, out=poly)
    return xp.copysign(poly, x, out=poly).reshape(shape)


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
