"""Losses against PyTorch (forward, gradients, second derivatives), numerical edge cases and bad input."""
import numpy as np
import pytest

import tinydl
import tinydl.functional as F

torch = pytest.importorskip("torch")
from .torch_oracle import check_against_torch as _check_against_torch, compare as _compare  # noqa: E402

REDUCTIONS = ["none", "sum", "mean"]


# ------------------------------------------------------------------------------------------------ cross_entropy
@pytest.mark.parametrize("shape", [(6, 5), (4, 3, 5), (3, 4, 2, 3)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 2])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15, 1.0])
def test_cross_entropy_matches_torch(shape, reduction, weighted, ignore_index, label_smoothing):
    rng = np.random.default_rng([len(shape), len(reduction), weighted, ignore_index % 7])
    classes = shape[1]
    target = rng.integers(0, classes, shape[:1] + shape[2:])
    target.reshape(-1)[::3] = ignore_index
    if ignore_index == -100:
        target.reshape(-1)[1] = 2  # class 2 present in both variants
    weight = rng.uniform(0.2, 2.0, classes) if weighted else None
    kwargs = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)
    _check_against_torch(
        rng,
        lambda x: F.cross_entropy(x, tinydl.tensor(target), None if weight is None else tinydl.tensor(weight),
                                  **kwargs),
        lambda x: torch.nn.functional.cross_entropy(x, torch.tensor(target),
                                                    None if weight is None else torch.tensor(weight), **kwargs),
        [rng.standard_normal(shape) * 2])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_with_probability_targets_matches_torch(reduction, weighted, label_smoothing):
    rng = np.random.default_rng(7)
    shape = (4, 5, 3)
    scores = rng.standard_normal(shape)
    probabilities = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    weight = rng.uniform(0.2, 2.0, 5) if weighted else None
    kwargs = dict(reduction=reduction, label_smoothing=label_smoothing)
    _check_against_torch(
        rng,
        lambda x, p: F.cross_entropy(x, p, None if weight is None else tinydl.tensor(weight), **kwargs),
        lambda x, p: torch.nn.functional.cross_entropy(x, p, None if weight is None else torch.tensor(weight),
                                                       **kwargs),
        [rng.standard_normal(shape), probabilities])


def test_cross_entropy_unbatched_sample_matches_torch():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal(6)
    for reduction in REDUCTIONS:
        ours = F.cross_entropy(tinydl.tensor(logits), tinydl.tensor(4), reduction=reduction)
        theirs = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(4), reduction=reduction)
        assert ours.shape == tuple(theirs.shape)
        _compare(ours, theirs)


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_cross_entropy_of_huge_logits_is_finite_and_exact(scale):
    rng = np.random.default_rng(11)
    logits = (rng.standard_normal((8, 10)) * scale).astype(np.float32)
    target = rng.integers(0, 10, 8)
    x = tinydl.Tensor(logits.copy(), requires_grad=True)
    loss = F.cross_entropy(x, tinydl.tensor(target), label_smoothing=0.1)
    loss.backward()
    xt = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(xt, torch.tensor(target), label_smoothing=0.1)
    expected.backward()
    assert np.isfinite(loss.item()) and np.all(np.isfinite(x.grad.numpy()))
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), atol=1e-7)


def test_cross_entropy_keeps_float32():
    x = tinydl.randn(16, 7, requires_grad=True)
    loss = F.cross_entropy(x, tinydl.randint(0, 7, (16,)), weight=tinydl.rand(7) + 0.5, label_smoothing=0.1)
    loss.backward()
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32


def test_cross_entropy_accepts_non_contiguous_logits():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((7, 4)).T  # (4, 7) transposed view, classes along axis 1
    target = rng.integers(0, 7, 4)
    x = tinydl.Tensor(logits, requires_grad=True)
    F.cross_entropy(x, tinydl.tensor(target), reduction="sum").backward()
    xt = torch.tensor(np.ascontiguousarray(logits), requires_grad=True)
    torch.nn.functional.cross_entropy(xt, torch.tensor(target), reduction="sum").backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12)


def test_cross_entropy_mean_over_only_ignored_targets_is_nan_with_zero_gradient():
    x = tinydl.randn(3, 4, dtype=tinydl.float64, requires_grad=True)
    with pytest.warns(RuntimeWarning):
        loss = F.cross_entropy(x, tinydl.tensor([-100, -100, -100]))
    loss.backward()
    assert np.isnan(loss.item())
    assert np.array_equal(x.grad.numpy(), np.zeros((3, 4)))


def test_cross_entropy_second_derivative_through_input_gradient():
    """Double backprop: the gradient norm of a loss is itself differentiated (a gradient penalty)."""
    rng = np.random.default_rng(9)
    logits, target = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    x = tinydl.Tensor(logits.copy(), requires_grad=True)
    (grad,) = tinydl.grad(F.cross_entropy(x, tinydl.tensor(target), label_smoothing=0.1), [x], create_graph=True)
    (grad * grad).sum().backward()
    xt = torch.tensor(logits, requires_grad=True)
    (grad_t,) = torch.autograd.grad(torch.nn.functional.cross_entropy(xt, torch.tensor(target), label_smoothing=0.1),
                                    [xt], create_graph=True)
    (grad_t * grad_t).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("target, message", [
    ([0, 7, 1], "target 7 is out of range for 5 classes"),
    ([0, -3, 1], "target -3 is out of range for 5 classes"),
])
def test_cross_entropy_target_out_of_range(target, message):
    with pytest.raises(IndexError, match=f"cross_entropy: {message}"):
        F.cross_entropy(tinydl.randn(3, 5), tinydl.tensor(target))


@pytest.mark.parametrize("target, weight, kwargs, error, message", [
    (np.zeros(4, dtype=np.int64), None, {}, ValueError, r"class indices of shape \(3,\).*\(4,\)"),
    (np.zeros(3, dtype=np.float32), None, {}, TypeError, "integer dtype"),
    (np.zeros(3, dtype=np.int64), np.ones(4, dtype=np.float32), {}, ValueError, r"weight must have shape \(5,\)"),
    (np.zeros(3, dtype=np.int64), np.ones(5), {}, TypeError, "weight has dtype float64"),
    (np.zeros(3, dtype=np.int64), None, {"reduction": "avg"}, ValueError, "reduction must be one of"),
    (np.zeros(3, dtype=np.int64), None, {"label_smoothing": 1.5}, ValueError, "label_smoothing must be in"),
    (np.full((3, 5), 0.2, dtype=np.float32), None, {"ignore_index": 1}, ValueError, "ignore_index=1 is not"),
])
def test_cross_entropy_bad_input(target, weight, kwargs, error, message):
    with pytest.raises(error, match=message):
        F.cross_entropy(tinydl.randn(3, 5), tinydl.tensor(target), None if weight is None else tinydl.tensor(weight),
                        **kwargs)


# ----------------------------------------------------------------------------------------------------- nll_loss
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 1])
def test_nll_loss_matches_torch(shape, reduction, weighted, ignore_index):
    rng = np.random.default_rng(len(shape) + weighted)
    target = rng.integers(0, shape[1], shape[:1] + shape[2:])
    target.reshape(-1)[::4] = ignore_index
    weight = rng.uniform(0.2, 2.0, shape[1]) if weighted else None
    kwargs = dict(ignore_index=ignore_index, reduction=reduction)
    _check_against_torch(
        rng,
        lambda x: F.nll_loss(x, tinydl.tensor(target), None if weight is None else tinydl.tensor(weight), **kwargs),
        lambda x: torch.nn.functional.nll_loss(x, torch.tensor(target),
                                               None if weight is None else torch.tensor(weight), **kwargs),
        [rng.standard_normal(shape)])


def test_nll_loss_bad_input():
    with pytest.raises(IndexError, match="nll_loss: target 4 is out of range for 4 classes"):
        F.nll_loss(tinydl.randn(2, 4), tinydl.tensor([4, 0]))
    with pytest.raises(TypeError, match="nll_loss: expected a floating-point input"):
        F.nll_loss(tinydl.tensor([[1, 2]]), tinydl.tensor([0]))


# ------------------------------------------------------------------------------------ mse / bce with logits
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss_matches_torch(reduction):
    rng = np.random.default_rng(1)
    _check_against_torch(rng, lambda x, t: F.mse_loss(x, t, reduction=reduction),
                         lambda x, t: torch.nn.functional.mse_loss(x, t, reduction=reduction),
                         [rng.standard_normal((3, 4)), rng.standard_normal((3, 4))])


def test_mse_loss_warns_when_shapes_broadcast():
    with pytest.warns(UserWarning, match=r"mse_loss: target shape \(3, 1\) differs from input shape \(3, 4\)"):
        F.mse_loss(tinydl.randn(3, 4), tinydl.randn(3, 1))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pos_weighted", [False, True])
def test_binary_cross_entropy_with_logits_matches_torch(reduction, weighted, pos_weighted):
    rng = np.random.default_rng(2 + weighted + 2 * pos_weighted)
    shape = (4, 3)
    weight = rng.uniform(0.2, 2.0, shape) if weighted else None
    pos_weight = rng.uniform(0.2, 3.0, shape[-1:]) if pos_weighted else None

    def ours(x, t):
        return F.binary_cross_entropy_with_logits(
            x, t, None if weight is None else tinydl.tensor(weight), reduction=reduction,
            pos_weight=None if pos_weight is None else tinydl.tensor(pos_weight))

    def theirs(x, t):
        return torch.nn.functional.binary_cross_entropy_with_logits(
            x, t, None if weight is None else torch.tensor(weight), reduction=reduction,
            pos_weight=None if pos_weight is None else torch.tensor(pos_weight))

    _check_against_torch(rng, ours, theirs, [rng.standard_normal(shape) * 3, rng.uniform(0, 1, shape)])


def test_binary_cross_entropy_with_logits_of_huge_logits_is_finite():
    logits = np.array([-1e4, -30.0, 0.0, 30.0, 1e4], dtype=np.float32)
    target = np.array([1.0, 0.0, 1.0, 1.0, 0.0], dtype=np.float32)
    x = tinydl.Tensor(logits.copy(), requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, tinydl.tensor(target), reduction="sum")
    loss.backward()
    xt = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(xt, torch.tensor(target), reduction="sum")
    expected.backward()
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), atol=1e-7)


def test_binary_cross_entropy_with_logits_bad_input():
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: target shape \(3,\) must equal"):
        F.binary_cross_entropy_with_logits(tinydl.randn(3, 1), tinydl.rand(3))
