"""dropout: identity cases, the statistics of the mask, the gradient equal to the mask, seeding, bad input."""
import numpy as np
import pytest

import tinydl
import tinydl.functional as F
from tinydl.gradcheck import gradcheck


def test_identity_when_not_training_or_p_zero():
    x = tinydl.randn(4, 5, requires_grad=True)
    assert F.dropout(x, 0.7, training=False) is x
    assert F.dropout(x, 0.0, training=True) is x


def test_p_one_gives_zeros_and_zero_gradient():
    x = tinydl.randn(4, 5, requires_grad=True)
    y = F.dropout(x, 1.0)
    y.sum().backward()
    assert not y.detach().numpy().any()
    assert np.array_equal(x.grad.numpy(), np.zeros((4, 5), dtype=np.float32))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_drop_fraction_and_scaling(p):
    tinydl.manual_seed(0)
    x = tinydl.ones(200, 500)
    y = F.dropout(x, p).numpy()
    kept = y != 0
    # binomial(n, 1 - p): 5 standard deviations
    n = y.size
    assert abs(kept.mean() - (1 - p)) <= 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y[kept], 1 / (1 - p), rtol=1e-6)
    assert y.dtype == np.float32


def test_gradient_is_the_mask_over_keep_probability():
    tinydl.manual_seed(1)
    p = 0.3
    x = tinydl.Tensor(np.random.default_rng(0).uniform(1, 2, (64, 32)).astype(np.float32), requires_grad=True)
    y = F.dropout(x, p)
    upstream = np.random.default_rng(1).standard_normal((64, 32)).astype(np.float32)
    y.backward(tinydl.Tensor(upstream))
    mask = (y.detach().numpy() != 0) / (1 - p)
    np.testing.assert_allclose(x.grad.numpy(), upstream * mask, rtol=1e-6)
    np.testing.assert_allclose(y.detach().numpy(), x.detach().numpy() * mask, rtol=1e-6)


def test_gradcheck_with_a_fixed_mask():
    x = tinydl.Tensor(np.random.default_rng(2).standard_normal((5, 6)), requires_grad=True)

    def seeded_dropout(x):
        tinydl.manual_seed(3)  # the same mask on every evaluation
        return F.dropout(x, 0.4)

    assert gradcheck(seeded_dropout, [x])


def test_seeding_reproduces_the_mask_and_calls_draw_fresh_masks():
    x = tinydl.ones(100)
    tinydl.manual_seed(5)
    first, second = F.dropout(x).numpy(), F.dropout(x).numpy()
    tinydl.manual_seed(5)
    assert np.array_equal(F.dropout(x).numpy(), first)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), "0.5", True])
def test_bad_probability(p):
    with pytest.raises(ValueError, match=r"dropout: the drop probability p must be a number in \[0, 1\]"):
        F.dropout(tinydl.randn(3), p)
