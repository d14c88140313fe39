"""The layer_norm row kernels against a float64 NumPy reference, across block boundaries and on the CuPy path."""
import numpy as np
import pytest

import tinydl
from tinydl.kernels import normalization


def _reference(x, g, dims, eps, weight, bias):
    """y = x_hat weight + bias, s, dx, dweight, dbias in float64, op by op (weight, bias: None or arrays)."""
    axes = tuple(range(x.ndim - dims, x.ndim))
    rows = tuple(range(x.ndim - dims))
    x, g = x.astype(np.float64), g.astype(np.float64)
    centred = x - x.mean(axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt((centred ** 2).mean(axis=axes, keepdims=True) + eps)
    x_hat = centred * inv_std
    y = x_hat * (1 if weight is None else weight) + (0 if bias is None else bias)
    g_hat = g * (1 if weight is None else weight)
    dx = inv_std * (g_hat - g_hat.mean(axis=axes, keepdims=True)
                    - x_hat * (g_hat * x_hat).mean(axis=axes, keepdims=True))
    return y, inv_std, dx, (g * x_hat).sum(axis=rows), g.sum(axis=rows)


@pytest.mark.parametrize("shape, dims, block", [((7, 5, 12), 1, 2**18), ((7, 5, 12), 2, 2**18),
                                                ((9, 16), 1, 33), ((3, 4), 1, 1), ((1, 40), 1, 8)])
@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("affine", [False, True])
def test_row_kernels_match_the_float64_reference(monkeypatch, shape, dims, block, dtype, tolerance, affine):
    """Blocks of whole rows (``block`` elements: several rows, one row, a row longer than the block), with and
    without the affine part, on rows whose mean (100) is large against their spread (3)."""
    monkeypatch.setattr(normalization, "BLOCK", block)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3 + 100).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    weight, bias = (rng.standard_normal(shape[len(shape) - dims:]).astype(dtype) if affine else None
                    for _ in range(2))
    y, mean, var, inv_std = normalization.layer_norm_forward(x, dims, 1e-5, weight, bias)
    expected_y, expected_inv_std, *expected_grads = _reference(x, g, dims, 1e-5, weight, bias)
    statistics_shape = shape[:len(shape) - dims] + (1,) * dims
    assert y.dtype == inv_std.dtype == dtype and mean.shape == var.shape == statistics_shape
    np.testing.assert_allclose(y, expected_y, atol=tolerance * 10)
    np.testing.assert_allclose(inv_std, expected_inv_std, rtol=tolerance)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=tuple(range(len(shape) - dims, len(shape))),
                                                              keepdims=True), rtol=tolerance)
    grads = normalization.layer_norm_backward(x, mean, inv_std, g, dims, weight)
    for grad, expected in zip(grads, expected_grads if affine else expected_grads[:1]):
        assert grad.dtype == dtype and grad.shape == expected.shape
        np.testing.assert_allclose(grad, expected, atol=tolerance * np.abs(expected).max() * 10)
    if not affine:
        assert grads[1] is None and grads[2] is None


@pytest.mark.skipif(not tinydl.is_available("cuda"), reason="needs CuPy and a GPU (or the CuPy double)")
def test_the_cupy_path_gives_the_numpy_results():
    import cupy
    rng = np.random.default_rng(1)
    x, g = rng.standard_normal((6, 33)), rng.standard_normal((6, 33))
    weight, bias = rng.standard_normal(33), rng.standard_normal(33)
    on_device = [cupy.asarray(a) for a in (x, g, weight, bias)]
    ours = normalization.layer_norm_forward(on_device[0], 1, 1e-5, *on_device[2:])
    expected = normalization.layer_norm_forward(x, 1, 1e-5, weight, bias)
    for result, reference in zip(ours, expected):
        np.testing.assert_allclose(cupy.asnumpy(result), reference, rtol=1e-12, atol=1e-12)
    grads = normalization.layer_norm_backward(on_device[0], ours[1], ours[3], on_device[1], 1, on_device[2])
    for result, reference in zip(grads, normalization.layer_norm_backward(x, expected[1], expected[3], g, 1, weight)):
        np.testing.assert_allclose(cupy.asnumpy(result), reference, rtol=1e-12, atol=1e-12)


def test_layer_norm_with_weight_and_bias_is_twice_differentiable():
    """The fused op's differentiable backward (Normalize's, on a recomputed x_hat) against finite differences."""
    import tinydl.functional as F
    from tinydl.gradcheck import gradcheck, gradgradcheck
    rng = np.random.default_rng(2)
    tensors = [tinydl.tensor(rng.standard_normal(shape), requires_grad=True) for shape in ((2, 3, 4), (3, 4), (3, 4))]

    def layer_norm(x, weight, bias):
        return F.layer_norm(x, (3, 4), weight, bias)
    assert gradcheck(layer_norm, tensors)
    assert gradgradcheck(layer_norm, tensors)
    tensors[0].requires_grad = False                # second derivatives with respect to weight and bias only
    assert gradgradcheck(layer_norm, tensors)
