"""The layer_norm row kernels against a float64 NumPy reference, across block boundaries and on the CuPy path."""
import numpy as np
import pytest

import tinydl
from tinydl.kernels import normalization


def _reference(x: np.ndarray, g: np.ndarray, dims: int, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x_hat, s and dx = s (g - mean(g) - x_hat mean(g x_hat)) in float64, op by op."""
    axes = tuple(range(x.ndim - dims, x.ndim))
    x, g = x.astype(np.float64), g.astype(np.float64)
    centred = x - x.mean(axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt((centred ** 2).mean(axis=axes, keepdims=True) + eps)
    x_hat = centred * inv_std
    dx = inv_std * (g - g.mean(axis=axes, keepdims=True) - x_hat * (g * x_hat).mean(axis=axes, keepdims=True))
    return x_hat, inv_std, dx


@pytest.mark.parametrize("shape, dims, block", [((7, 5, 12), 1, 2**18), ((7, 5, 12), 2, 2**18),
                                                ((9, 16), 1, 33), ((3, 4), 1, 1), ((1, 40), 1, 8)])
@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 2e-5), (np.float64, 1e-12)])
def test_row_kernels_match_the_float64_reference(monkeypatch, shape, dims, block, dtype, tolerance):
    """Blocks of whole rows (``block`` elements: several rows, one row, a row longer than the block)."""
    monkeypatch.setattr(normalization, "BLOCK", block)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3 + 100).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    x_hat, mean, var, inv_std = normalization.layer_norm_forward(x, dims, 1e-5)
    expected_x_hat, expected_inv_std, expected_dx = _reference(x, g, dims, 1e-5)
    statistics_shape = shape[:len(shape) - dims] + (1,) * dims
    assert x_hat.dtype == inv_std.dtype == dtype and mean.shape == var.shape == statistics_shape
    np.testing.assert_allclose(x_hat, expected_x_hat, atol=tolerance)
    np.testing.assert_allclose(inv_std, expected_inv_std, rtol=tolerance)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=tuple(range(len(shape) - dims, len(shape))),
                                                              keepdims=True), rtol=tolerance)
    dx = normalization.layer_norm_backward(x_hat, inv_std, g, dims)
    np.testing.assert_allclose(dx, expected_dx, atol=tolerance * np.abs(expected_dx).max())


@pytest.mark.skipif(not tinydl.is_available("cuda"), reason="needs CuPy and a GPU (or the CuPy double)")
def test_the_cupy_path_gives_the_numpy_results():
    import cupy
    rng = np.random.default_rng(1)
    x, g = rng.standard_normal((6, 33)), rng.standard_normal((6, 33))
    ours = normalization.layer_norm_forward(cupy.asarray(x), 1, 1e-5)
    expected = normalization.layer_norm_forward(x, 1, 1e-5)
    for result, reference in zip(ours, expected):
        np.testing.assert_allclose(cupy.asnumpy(result), reference, rtol=1e-12, atol=1e-12)
    dx = normalization.layer_norm_backward(ours[0], ours[3], cupy.asarray(g), 1)
    np.testing.assert_allclose(cupy.asnumpy(dx), normalization.layer_norm_backward(expected[0], expected[3], g, 1),
                               rtol=1e-12, atol=1e-12)
