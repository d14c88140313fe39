"""Numerical edges: huge logits, fully masked rows, constant and offset inputs, division by zero and log of zero.

Every value is compared with a float64 NumPy reference computed from the same (float32-rounded) inputs by a
different route: ``np.logaddexp.reduce`` for log-sum-exp, closed-form gradients, and two-pass float64 moments.
"""
import math

import numpy as np
import pytest

import tinydl
import tinydl.functional as F
from tinydl.anomaly import AnomalyError
from tinydl.gradcheck import gradcheck

FLOATS = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


# ------------------------------------------------------------------------------------------------ references
def ref_log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """(x - m) - log sum exp(x - m) in float64, the sum by pairwise ``np.logaddexp``; m = the row max, without
    which a row of -3.4e38 would lose its log(4) to rounding."""
    shifted = x.astype(np.float64) - x.max(axis=axis, keepdims=True)
    return shifted - np.expand_dims(np.logaddexp.reduce(shifted, axis=axis), axis)


def ref_logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    peak = x.astype(np.float64).max(axis=axis)
    return peak + np.logaddexp.reduce(x.astype(np.float64) - np.expand_dims(peak, axis), axis=axis)


def ref_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    return np.exp(ref_log_softmax(x, axis))


def huge_logits(dtype, rng) -> np.ndarray:
    """Rows mixing +-1e4 with nearby values: exp(1e4) overflows any float, so only shifted formulas survive."""
    base = np.array([[1e4, -1e4, 1e4 - 3.0, 0.0, 9990.0],
                     [-1e4, -1e4 + 1.0, -9999.5, -1e4, -1e4 + 2.0],
                     [1e4, 1e4, 1e4, 1e4, 1e4]])
    return (base + rng.uniform(-0.5, 0.5, base.shape)).astype(dtype)


def masked_logits(dtype) -> np.ndarray:
    """Rows masked the usual way, by the most negative finite value: partly, and (last row) fully."""
    lowest = np.finfo(dtype).min
    return np.array([[2.0, lowest, -1.0, lowest],
                     [lowest, lowest, lowest, lowest]], dtype=dtype)


def upstream(shape, rng, dtype) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def run(op, x: np.ndarray, weights: np.ndarray):
    """op(x), and the vector-Jacobian product weights^T d op(x) / dx."""
    leaf = tinydl.tensor(x, requires_grad=True)
    y = op(leaf)
    y.backward(tinydl.tensor(weights))
    return y.numpy(), leaf.grad.numpy()


def assert_finite_close(actual, expected, dtype, what):
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, expected {np.dtype(dtype)}"
    assert np.all(np.isfinite(actual)), f"{what}: non-finite values {actual}"
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * scale, err_msg=what)


# --------------------------------------------------------------------------------------- softmax family
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("make", ["huge", "masked"])
def test_log_softmax_softmax_logsumexp_are_finite_and_exact(dtype, make):
    rng = np.random.default_rng(1)
    x = huge_logits(dtype, rng) if make == "huge" else masked_logits(dtype)
    w = upstream(x.shape, rng, dtype)
    p = ref_softmax(x, 1)

    y, g = run(lambda t: F.log_softmax(t, 1), x, w)
    log_p = ref_log_softmax(x, 1)
    assert_finite_close(y, log_p, dtype, "log_softmax")
    assert_finite_close(g, w - p * w.sum(1, keepdims=True), dtype, "log_softmax gradient")

    y, g = run(lambda t: F.softmax(t, 1), x, w)
    assert_finite_close(y, p, dtype, "softmax")
    assert_finite_close(g, p * (w - (w * p).sum(1, keepdims=True)), dtype, "softmax gradient")

    y, g = run(lambda t: F.logsumexp(t, 1), x, w[:, 0])
    assert_finite_close(y, ref_logsumexp(x, 1), dtype, "logsumexp")
    assert np.all(np.isfinite(g)), "logsumexp gradient"


@pytest.mark.parametrize("dtype,make", [(np.float32, "huge"), (np.float64, "huge"), (np.float32, "masked"),
                                        (np.float64, "masked")])
def test_logsumexp_gradient_is_the_softmax(dtype, make):
    rng = np.random.default_rng(1)
    x = huge_logits(dtype, rng) if make == "huge" else masked_logits(dtype)
    w = upstream(x.shape[:1], rng, dtype)
    _, g = run(lambda t: F.logsumexp(t, 1), x, w)
    assert_finite_close(g, w[:, None] * ref_softmax(x, 1), dtype, "logsumexp gradient")


def test_fully_masked_row_gives_the_uniform_distribution():
    y = F.softmax(tinydl.tensor(masked_logits(np.float32)), 1).numpy()
    np.testing.assert_array_equal(y[1], np.full(4, 0.25, np.float32))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("make", ["huge", "masked"])
def test_cross_entropy_is_finite_and_exact(dtype, make):
    rng = np.random.default_rng(2)
    x = huge_logits(dtype, rng) if make == "huge" else masked_logits(dtype)
    target = np.arange(len(x)) % x.shape[1]  # some targets sit on a -1e4 (or masked) logit: loss ~ 2e4
    log_p = ref_log_softmax(x, 1)
    rows = np.arange(len(x))
    expected_loss = -log_p[rows, target].mean()
    onehot = np.eye(x.shape[1])[target]
    expected_grad = (np.exp(log_p) - onehot) / len(x)

    leaf = tinydl.tensor(x, requires_grad=True)
    loss = F.cross_entropy(leaf, tinydl.tensor(target))
    loss.backward()
    assert_finite_close(loss.numpy(), np.asarray(expected_loss), dtype, "cross_entropy")
    assert_finite_close(leaf.grad.numpy(), expected_grad, dtype, "cross_entropy gradient")


# ------------------------------------------------------------------------------------------------ attention
def ref_attention(q, k, v, allowed):
    """softmax over the allowed keys (float64); rows with no allowed key give zeros."""
    scores = q.astype(np.float64) @ k.astype(np.float64).swapaxes(-1, -2) / math.sqrt(q.shape[-1])
    scores = np.where(allowed, scores, -np.inf)
    live = allowed.any(-1, keepdims=True)
    safe = np.where(live, scores, 0.0)
    weights = np.exp(safe - safe.max(-1, keepdims=True)) * allowed
    weights = np.where(live, weights / np.where(live, weights.sum(-1, keepdims=True), 1.0), 0.0)
    return weights @ v.astype(np.float64)


@pytest.mark.parametrize("dtype", FLOATS)
def test_attention_with_huge_scores_and_fully_masked_rows(dtype):
    rng = np.random.default_rng(3)
    length, keys, features = 4, 5, 3
    q = (rng.standard_normal((2, length, features)) * 3e3).astype(dtype)  # scores of order 1e4
    k = rng.standard_normal((2, keys, features)).astype(dtype)
    v = rng.standard_normal((2, keys, 2)).astype(dtype)
    allowed = rng.random((2, length, keys)) > 0.3
    allowed[:, 0] = True
    allowed[0, 2] = False                       # a row where every key is masked
    allowed[1, 3] = False
    tensors = [tinydl.tensor(a, requires_grad=True) for a in (q, k, v)]
    out = F.scaled_dot_product_attention(*tensors, attn_mask=tinydl.tensor(allowed))
    w = upstream(out.shape, rng, dtype)
    (out * tinydl.tensor(w)).sum().backward()

    expected = ref_attention(q, k, v, allowed)
    np.testing.assert_array_equal(out.numpy()[0, 2], 0)
    np.testing.assert_array_equal(out.numpy()[1, 3], 0)
    assert_finite_close(out.numpy(), expected, dtype, "attention output")
    for name, tensor in zip("qkv", tensors):
        assert np.all(np.isfinite(tensor.grad.numpy())), f"d{name} not finite"
    np.testing.assert_array_equal(tensors[0].grad.numpy()[0, 2], 0)  # a dead row passes no gradient to q


def test_attention_gradient_in_float64_with_a_dead_row():
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal(shape) for shape in ((3, 2), (4, 2), (4, 2)))
    allowed = np.ones((3, 4), dtype=bool)
    allowed[1] = False
    allowed[2, :2] = False
    additive = np.where(allowed, 0.0, -np.inf)   # the same mask, given as -inf added to the scores
    inputs = [tinydl.tensor(a, requires_grad=True) for a in (q, k, v)]
    for mask in (allowed, additive):
        gradcheck(lambda *t: F.scaled_dot_product_attention(*t, attn_mask=tinydl.tensor(mask)), inputs)
        out = F.scaled_dot_product_attention(*inputs, attn_mask=tinydl.tensor(mask)).numpy()
        np.testing.assert_allclose(out, ref_attention(q, k, v, allowed), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------- var, layer_norm
def noisy(offset: float, noise: float, dtype, shape=(4, 256), seed=5) -> np.ndarray:
    return (offset + noise * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


# constants that float32 cannot sum exactly (10000.1 * 100 is not a float32): the computed mean is off by about
# one ulp of the constant, which the variance then squares
CONSTANTS = [0.1, 1e4 + 0.1]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("constant", CONSTANTS)
def test_var_of_constant_input_is_zero_up_to_rounding(dtype, constant):
    x = tinydl.tensor(np.full((3, 100), constant, dtype=dtype), requires_grad=True)
    v = F.var(x, 1)
    v.sum().backward()
    ulp = float(np.spacing(dtype(constant)))
    assert v.dtype == dtype
    assert np.all(v.numpy() >= 0) and np.all(v.numpy() <= (4 * ulp) ** 2), v.numpy()
    assert np.all(np.isfinite(x.grad.numpy()))
    assert np.abs(x.grad.numpy()).max() <= 8 * ulp / 99


@pytest.mark.parametrize("dtype,noise,rtol", [(np.float32, 1.0, 1e-4), (np.float32, 1e-2, 2e-2),
                                              (np.float64, 1e-2, 1e-9)])
def test_var_with_large_offset_matches_two_pass_float64(dtype, noise, rtol):
    x = noisy(1e4, noise, dtype)
    expected = x.astype(np.float64).var(axis=1, ddof=1)
    actual = F.var(tinydl.tensor(x), 1).numpy()
    # a one-pass E[x^2] - E[x]^2 in float32 would be off by ~1e8 * 6e-8 = 6, dwarfing a variance of 1e-4
    np.testing.assert_allclose(actual, expected, rtol=rtol)


@pytest.mark.parametrize("dtype,constant", [(np.float32, 0.1), (np.float32, 1e4 + 0.1), (np.float64, 0.1),
                                            (np.float64, 1e4 + 0.1)])
def test_layer_norm_of_constant_input_is_zero_and_finite(dtype, constant):
    rng = np.random.default_rng(6)
    x = tinydl.tensor(np.full((2, 3, 100), constant, dtype=dtype), requires_grad=True)
    weight = tinydl.tensor(rng.standard_normal(100).astype(dtype), requires_grad=True)
    bias = tinydl.tensor(rng.standard_normal(100).astype(dtype), requires_grad=True)
    y = F.layer_norm(x, 100, weight, bias)
    (y * tinydl.tensor(upstream(y.shape, rng, dtype))).sum().backward()
    assert y.dtype == dtype
    for tensor in (x, weight, bias):
        assert np.all(np.isfinite(tensor.grad.numpy()))
    # every x equal: x_hat = 0, so y = bias and dL/dweight = sum of upstream * x_hat = 0
    np.testing.assert_allclose(y.numpy(), np.broadcast_to(bias.numpy(), y.shape), atol=1e-3)
    np.testing.assert_allclose(weight.grad.numpy(), 0, atol=1e-2)


@pytest.mark.parametrize("dtype,noise,rtol", [(np.float32, 1.0, 1e-3), (np.float32, 1e-1, 3e-2),
                                              (np.float64, 1e-2, 1e-8)])
def test_layer_norm_with_large_offset_matches_float64(dtype, noise, rtol):
    x = noisy(1e4, noise, dtype, shape=(3, 64))
    wide = x.astype(np.float64)
    centred = wide - wide.mean(1, keepdims=True)
    expected = centred / np.sqrt((centred ** 2).mean(1, keepdims=True) + 1e-5)
    actual = F.layer_norm(tinydl.tensor(x), 64).numpy()
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol)


def test_var_and_layer_norm_gradients_at_a_large_offset_in_float64():
    x = tinydl.tensor(noisy(1e4, 1e-1, np.float64, shape=(2, 5)), requires_grad=True)
    gradcheck(lambda t: F.var(t, 1), [x])
    gradcheck(lambda t: F.layer_norm(t, 5), [x])


# ------------------------------------------------------------------------------- division by zero, log of 0
def numpy_results(function, *arrays):
    with np.errstate(all="ignore"):
        return function(*arrays)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dtype", FLOATS)
def test_division_by_zero_and_log_of_zero_follow_numpy(dtype):
    a = np.array([1.0, -1.0, 0.0, 2.0], dtype=dtype)
    b = np.array([0.0, 0.0, 0.0, 4.0], dtype=dtype)
    cases = [("div", lambda x, y: x / y, np.divide, (a, b)),
             ("log", lambda x: F.log(x), np.log, (np.array([0.0, -1.0, 1.0], dtype=dtype),)),
             ("sqrt", lambda x: F.sqrt(x), np.sqrt, (np.array([-1.0, 0.0, 4.0], dtype=dtype),))]
    for name, op, reference, arrays in cases:
        result = op(*[tinydl.tensor(x) for x in arrays])   # no exception: inf and nan, as in NumPy
        assert result.dtype == dtype, name
        np.testing.assert_array_equal(result.numpy(), numpy_results(reference, *arrays), err_msg=name)
        with tinydl.detect_anomaly(), pytest.raises(AnomalyError, match=f"forward of {name}"):
            op(*[tinydl.tensor(x, requires_grad=True) for x in arrays])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_gradients_at_the_pole_are_inf_as_in_numpy_and_anomaly_mode_catches_them():
    values = np.array([0.0, 2.0], dtype=np.float32)
    x = tinydl.tensor(values, requires_grad=True)
    F.log(x).sum().backward()                                # d log x / dx = 1 / x
    np.testing.assert_array_equal(x.grad.numpy(), numpy_results(np.divide, 1.0, values))
    y = tinydl.tensor(values, requires_grad=True)
    root = F.sqrt(y)                                         # finite forward, sqrt'(0) = inf
    with tinydl.detect_anomaly(), pytest.raises(AnomalyError, match="backward of sqrt produced inf"):
        root.sum().backward()
