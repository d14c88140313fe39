"""erf and the blocked exact GELU kernel against math.erf / math.erfc in float64, on a dense grid and the edges.

float32 uses A&S 7.1.26 (absolute error 1.5e-7) evaluated in float32: near erf's zero crossing, 1 - P(t) e^(-x^2)
cancels, and the rounding of the Horner sum (coefficients up to 1.45, alternating in sign) adds a few ulps of 1,
so the bound here is 8e-7 absolute (measured 6.1e-7, at x = -0.0236, the same before and after the fast form).
"""
import math

import numpy as np
import pytest

import tinydl
from tinydl.kernels import special

F32_BOUND = 8e-7
EDGES = [0.0, -0.0, 1e-30, -1e-30, 1e-45, -1e-45, 3.4e38, -3.4e38]


def _erf_reference(x: np.ndarray) -> np.ndarray:
    return np.array([math.erf(v) for v in x.astype(np.float64)])


def _gelu_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y = x Phi(x) and dy/dx = Phi(x) + x phi(x) in float64, Phi through erfc (no cancellation in the left tail)."""
    x = x.astype(np.float64)
    cdf = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x])
    return x * cdf, cdf + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)


GRID = np.concatenate([np.linspace(-9, 9, 200_001), EDGES]).astype(np.float32)


def test_float32_erf_on_a_dense_grid_and_the_edges():
    with np.errstate(over="ignore"):    # x^2 overflows to inf for |x| = 3.4e38: e^(-inf) = 0, as it should
        result = special.erf(GRID)
    assert result.dtype == np.float32
    assert np.max(np.abs(result - _erf_reference(GRID))) < F32_BOUND
    with np.errstate(over="ignore"):
        edges = special.erf(np.array([0.0, -0.0, np.inf, -np.inf, np.nan], np.float32))
    np.testing.assert_array_equal(edges[:4], [0.0, -0.0, 1.0, -1.0])
    assert np.signbit(edges[1]) and not np.signbit(edges[0])   # erf is odd: the sign of zero survives
    assert np.isnan(edges[4])


def test_float32_erf_has_the_sign_of_x_near_zero():
    """The sign bit is copied onto height (1 - P(t) e^(-z^2)), which must never round below zero."""
    x = np.linspace(0, 0.01, 100_001).astype(np.float32)
    for values in (x, -x):
        result = special.erf(values)
        assert np.all(np.signbit(result) == np.signbit(values))
        assert np.all((result == 0) | (np.sign(result) == np.sign(values)))


def test_float32_gelu_and_slope_on_a_dense_grid_and_the_edges():
    with np.errstate(over="ignore"):
        y, slope = special.gelu_and_slope(GRID)
    y_ref, slope_ref = _gelu_reference(GRID)
    assert y.dtype == slope.dtype == np.float32
    assert np.max(np.abs(y - y_ref) / np.maximum(1, np.abs(y_ref))) < F32_BOUND
    assert np.max(np.abs(slope - slope_ref)) < F32_BOUND
    with np.errstate(over="ignore", invalid="ignore"):
        y, slope = special.gelu_and_slope(np.array([np.inf, -3e38, np.nan], np.float32))
    assert y[0] == np.inf and y[1] == 0 and np.isnan(y[2])
    assert slope[1] == 0 and np.isnan(slope[2])


def test_float64_gelu_and_slope_are_full_precision():
    x = np.linspace(-9, 9, 2001)
    y, slope = special.gelu_and_slope(x)
    y_ref, slope_ref = _gelu_reference(x)
    # Phi = (1 + erf) / 2 cancels in the left tail: absolute precision, a few ulps of 1
    np.testing.assert_allclose(y, y_ref, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(slope, slope_ref, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("shape", [(), (0,), (3, special.BLOCK // 2 + 5)])
def test_blocks_cover_any_size_and_keep_the_shape(shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y, slope = special.gelu_and_slope(x)
    y_ref, slope_ref = _gelu_reference(x.reshape(-1))
    assert y.shape == slope.shape == shape
    np.testing.assert_allclose(y.reshape(-1), y_ref, atol=F32_BOUND, rtol=F32_BOUND)
    np.testing.assert_allclose(slope.reshape(-1), slope_ref, atol=F32_BOUND)


@pytest.mark.skipif(not tinydl.is_available("cuda"), reason="needs CuPy and a GPU (or the CuPy double)")
def test_the_cupy_path_gives_the_numpy_results():
    import cupy
    x = np.concatenate([np.linspace(-9, 9, 1001), [0.0, -0.0]]).astype(np.float32)
    y, slope = special.gelu_and_slope(cupy.asarray(x))
    expected_y, expected_slope = special.gelu_and_slope(x)
    np.testing.assert_allclose(cupy.asnumpy(y), expected_y, atol=1e-7, rtol=1e-6)
    np.testing.assert_allclose(cupy.asnumpy(slope), expected_slope, atol=1e-7, rtol=1e-6)
    np.testing.assert_allclose(cupy.asnumpy(special.erf(cupy.asarray(x))), special.erf(x), atol=1e-7)
