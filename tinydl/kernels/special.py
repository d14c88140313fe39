"""Special functions NumPy lacks, written with array operations only (so they run on NumPy and CuPy alike).

``erf`` is needed by the exact GELU, and :func:`gelu_and_slope` computes that activation and its derivative in
cache-sized blocks.
Float32 inputs use the Abramowitz & Stegun 7.1.26 rational approximation
(absolute error below 1.5e-7, i.e. float32 rounding); float64 inputs, used by gradient checks, get full double
precision from the Maclaurin series for |x| < 2.5 and the Laplace continued fraction of erfc beyond.
"""
from __future__ import annotations

import math
from typing import Any

from ..backend import get_array_module
from .scratch import scratch
from .threads import parallel_for

_SERIES_TERMS = 45        # the Maclaurin series for |x| < 2.5 has converged to 1e-17 by then
_FRACTION_DEPTH = 80      # the continued fraction for |x| >= 2.5 has converged to 1e-16 by then
_SWITCH = 2.5


def erf(x: Any) -> Any:
    """erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt, elementwise, in the dtype of ``x``."""
    if x.dtype.itemsize <= 4:
        return _erf_rational(x)
    return _erf_double(x)


BLOCK = 2**17  # elements per block of gelu_and_slope on a CPU (see the function)

# Abramowitz & Stegun 7.1.26: erf(z) ~ 1 - (a1 t + a2 t^2 + a3 t^3 + a4 t^4 + a5 t^5) e^(-z^2), t = 1 / (1 + p z)
_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
_P = 0.3275911


def gelu_and_slope(x: Any) -> tuple[Any, Any]:
    """The exact GELU y = x Phi(x) and its derivative dy/dx = Phi(x) + x phi(x), both in x's dtype, where
    Phi(x) = (1 + erf(x / sqrt 2)) / 2 is the normal CDF and phi(x) = e^(-x^2/2) / sqrt(2 pi) its density.

    The forward keeps the derivative rather than Phi for the backward (same memory: one array of x's size), so the
    backward is the single product dx = gy dy/dx; e^(-x^2/2), which the derivative needs, is a by-product of erf.

    Computed block by block (:data:`BLOCK` elements on a CPU, the whole array on a GPU): the 24 element-wise passes
    of one block run on work arrays that stay in the cache, so the memory sees x read once and y and dy/dx written
    once, where the pass-by-pass form streams every temporary through memory (which, on a machine whose memory
    bus is shared with other jobs, is what takes the time). Each NumPy call also costs about a microsecond of its
    own, so the blocks are as large as the L3 cache allows: on (32, 128, 512) float32, 1 thread, the forward took
    7.1 ms in blocks of 2**15 elements (3 x 128 KB of work arrays, in the L2 cache), 6.3 ms in blocks of 2**17 or
    2**18, 8.2 ms unblocked."""
    xp = get_array_module(x)
    flat = xp.ascontiguousarray(x).reshape(-1)
    y, slope = xp.empty_like(flat), xp.empty_like(flat)
    block = BLOCK if xp.__name__ == "numpy" else max(1, flat.size)
    density_scale = flat.dtype.type(1 / math.sqrt(2 * math.pi))

    def run(part: slice) -> None:  # a range of blocks; the ranges run on separate threads (:mod:`.threads`)
        work = scratch(xp, "gelu.work", (3, min(block, part.stop - part.start)), flat.dtype)
        for start in range(part.start, part.stop, block):
            stop = min(start + block, part.stop)
            x_block, (cdf, decay, spare) = flat[start:stop], work[:, :stop - start]
            _normal_cdf_into(xp, x_block, cdf, decay, spare)
            xp.multiply(x_block, cdf, out=y[start:stop])
            decay *= x_block                                    # x e^(-x^2/2)
            decay *= density_scale                              # x phi(x)
            xp.add(cdf, decay, out=slope[start:stop])

    parallel_for(xp, flat.size, run, 3 * flat.itemsize)
    return y.reshape(x.shape), slope.reshape(x.shape)


def _normal_cdf_into(xp: Any, x: Any, cdf: Any, decay: Any, scratch: Any) -> None:
    """``cdf`` = Phi(x) = 1/2 + erf(x / sqrt 2) / 2 and ``decay`` = e^(-x^2/2); ``scratch`` is a work array."""
    if x.dtype.itemsize <= 4:
        _scaled_erf_into(xp, x, cdf, scratch, decay, scale=1 / math.sqrt(2), height=0.5)
    else:
        xp.multiply(x, x.dtype.type(1 / math.sqrt(2)), out=cdf)
        xp.copyto(cdf, _erf_double(cdf))
        cdf *= x.dtype.type(0.5)
        xp.multiply(x, x, out=decay)
        decay *= x.dtype.type(-0.5)
        xp.exp(decay, out=decay)
    cdf += x.dtype.type(0.5)


def _erf_rational(x: Any) -> Any:
    """A&S 7.1.26 on a whole array (see :func:`_scaled_erf_into`)."""
    xp = get_array_module(x)
    flat = x.reshape(-1)                           # 1-D, so that 0-d inputs stay arrays for the out= calls
    out = xp.empty_like(flat)
    _scaled_erf_into(xp, flat, out, xp.empty_like(flat), xp.empty_like(flat), scale=1.0, height=1.0)
    return out.reshape(x.shape)


def _scaled_erf_into(xp: Any, x: Any, out: Any, t: Any, decay: Any, scale: float, height: float) -> None:
    """``out`` = height erf(scale x) by A&S 7.1.26, and ``decay`` = e^(-(scale x)^2); ``t`` is a work array.

    With z = scale x, t = 1 / (1 + p |z|) and P(t) = a1 t + ... + a5 t^5:
        height erf(z) ~ sign(z) (height - height P(t) e^(-z^2)).
    The fast form never forms z: scale enters the exponent (-scale^2 x^2) and t = knee / (knee + |x|) with
    knee = 1 / (p scale) (one pass fewer than 1 / (1 + p scale |x|), and NumPy's divide is faster than its
    reciprocal), height enters the coefficients (height a_k), and sign(z) = sign(x) is applied by copying x's sign
    bit onto the bracket, which is >= 0 (NumPy's copysign is not vectorised; the two bitwise passes take a third
    of its time). Infinities give t = 0 and e^(-z^2) = 0, so +-height; a NaN stays NaN.
    """
    dtype = x.dtype.type
    xp.square(x, out=decay)
    decay *= dtype(-scale * scale)
    xp.exp(decay, out=decay)                       # e^(-z^2)
    knee = 1 / (_P * scale)
    xp.abs(x, out=t)
    t += dtype(knee)
    xp.divide(dtype(knee), t, out=t)               # t = 1 / (1 + p |z|) = knee / (knee + |x|)
    xp.multiply(t, dtype(height * _A[-1]), out=out)
    for coefficient in reversed(_A[:-1]):
        out += dtype(height * coefficient)
        out *= t                                   # Horner: ((a5 t + a4) t + ...) t, scaled by height
    out *= decay
    xp.subtract(dtype(height), out, out=out)       # height (1 - P(t) e^(-z^2)) >= 0
    _copy_sign_bit(xp, x, out, t)


def _copy_sign_bit(xp: Any, source: Any, target: Any, scratch: Any) -> None:
    """target = |target| with the sign of ``source``, for a ``target`` whose sign bit is clear (>= 0 or NaN), on
    the bits: target |= source & sign mask (``scratch`` receives the masked bits)."""
    unsigned = xp.dtype(f"u{source.dtype.itemsize}")
    sign_mask = unsigned.type(1 << (8 * source.dtype.itemsize - 1))
    xp.bitwise_and(source.view(unsigned), sign_mask, out=scratch.view(unsigned))
    target_bits = target.view(unsigned)
    target_bits |= scratch.view(unsigned)


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
