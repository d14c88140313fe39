"""batch_norm and layer_norm against PyTorch (forward, running statistics, first and second derivatives),
numerical stability and bad input."""
import numpy as np
import pytest

import tinydl
import tinydl.functional as F

torch = pytest.importorskip("torch")
from .torch_oracle import check_against_torch  # noqa: E402


# -------------------------------------------------------------------------------------------------- batch_norm
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_matches_torch(shape, training, affine):
    rng = np.random.default_rng([len(shape), training, affine])
    channels = shape[1]
    running_mean, running_var = rng.standard_normal(channels), rng.uniform(0.5, 2.0, channels)
    ours_stats = [tinydl.tensor(running_mean), tinydl.tensor(running_var)]
    torch_stats = [torch.tensor(running_mean), torch.tensor(running_var)]
    inputs = [rng.standard_normal(shape) * 2 + 1]
    if affine:
        inputs += [rng.standard_normal(channels), rng.standard_normal(channels)]
    check_against_torch(
        rng,
        lambda *args: F.batch_norm(args[0], *ours_stats, *args[1:], training=training, momentum=0.3),
        lambda *args: torch.nn.functional.batch_norm(args[0], *torch_stats, *args[1:], training=training,
                                                     momentum=0.3),
        inputs)
    for ours, theirs in zip(ours_stats, torch_stats):  # both updated in place once (training) or not at all
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)
    if not training:
        assert np.array_equal(ours_stats[0].numpy(), running_mean)


def test_batch_norm_training_without_running_statistics():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 2, 3))
    ours = F.batch_norm(tinydl.tensor(x), None, None, training=True)
    theirs = torch.nn.functional.batch_norm(torch.tensor(x), None, None, training=True)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-12)


def test_batch_norm_keeps_float32_and_updates_statistics_in_float32():
    x = tinydl.randn(16, 4, 3, 3, requires_grad=True)
    running_mean, running_var = tinydl.zeros(4), tinydl.ones(4)
    weight, bias = tinydl.ones(4, requires_grad=True), tinydl.zeros(4, requires_grad=True)
    y = F.batch_norm(x, running_mean, running_var, weight, bias, training=True)
    y.sum().backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32 and weight.grad.dtype == np.float32
    assert running_mean.dtype == np.float32 and running_var.dtype == np.float32


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_normalisation_of_constant_input_is_zero_with_finite_gradient(offset):
    for normalise in (lambda x: F.batch_norm(x, None, None, training=True), lambda x: F.layer_norm(x, x.shape[1:])):
        x = tinydl.full((4, 3), offset + 2.5, dtype=tinydl.float32, requires_grad=True)
        y = normalise(x)
        (y * tinydl.randn(4, 3)).sum().backward()
        assert np.all(np.abs(y.numpy()) < 1e-2)
        assert np.all(np.isfinite(x.grad.numpy()))


def test_layer_norm_of_large_offset_float32_matches_float64():
    """Two-pass variance: values near 1e4 that differ by ~1 keep their spread in float32."""
    rng = np.random.default_rng(4)
    x = 1e4 + rng.standard_normal((5, 16))
    exact = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    ours = F.layer_norm(tinydl.tensor(x.astype(np.float32)), 16)
    np.testing.assert_allclose(ours.numpy(), exact, atol=5e-3)


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.batch_norm(tinydl.randn(1, 3), None, None, training=True), ValueError,
     r"more than 1 value per channel.*\(1, 3\)"),
    (lambda: F.batch_norm(tinydl.randn(4, 3), tinydl.zeros(2), tinydl.ones(3)), ValueError,
     r"running_mean must have shape \(3,\).*got \(2,\)"),
    (lambda: F.batch_norm(tinydl.randn(4, 3), tinydl.zeros(3), None), ValueError, "required when training=False"),
    (lambda: F.batch_norm(tinydl.randn(4), None, None, training=True), ValueError, "at least 2 dimensions"),
    (lambda: F.batch_norm(tinydl.randn(4, 3), tinydl.zeros(3, dtype=tinydl.float64), tinydl.ones(3)), TypeError,
     "running_mean has dtype float64 but the input has float32"),
])
def test_batch_norm_bad_input(call, error, message):
    with pytest.raises(error, match=f"^batch_norm: .*{message}"):
        call()


# -------------------------------------------------------------------------------------------------- layer_norm
@pytest.mark.parametrize("shape, normalized_shape", [((4, 6), 6), ((2, 3, 5), (5,)), ((2, 3, 4), (3, 4))])
@pytest.mark.parametrize("affine", ["none", "weight", "both"])
def test_layer_norm_matches_torch(shape, normalized_shape, affine):
    rng = np.random.default_rng([len(shape), len(affine)])
    normalized = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
    inputs = [rng.standard_normal(shape) * 3 - 1]
    if affine != "none":
        inputs.append(rng.standard_normal(normalized))
    if affine == "both":
        inputs.append(rng.standard_normal(normalized))
    check_against_torch(
        rng,
        lambda *args: F.layer_norm(args[0], normalized_shape, *args[1:], eps=1e-4),
        lambda *args: torch.nn.functional.layer_norm(args[0], normalized, *args[1:], eps=1e-4),
        inputs)


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.layer_norm(tinydl.randn(2, 5), (4,)), ValueError,
     r"normalized_shape \(4,\) must be the trailing dimensions of the input, whose shape is \(2, 5\)"),
    (lambda: F.layer_norm(tinydl.randn(2, 5), 5, tinydl.ones(4)), ValueError, r"weight must have shape \(5,\)"),
    (lambda: F.layer_norm(tinydl.randn(2, 5), 5, tinydl.ones(5, dtype=tinydl.float64)), TypeError,
     "weight has dtype float64"),
    (lambda: F.layer_norm(tinydl.tensor([[1, 2]]), 2), TypeError, "floating-point input"),
])
def test_layer_norm_bad_input(call, error, message):
    with pytest.raises(error, match=f"^layer_norm: .*{message}"):
        call()
