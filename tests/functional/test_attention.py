"""scaled_dot_product_attention: PyTorch as oracle, masks, fully masked rows, stability, dropout, second
derivatives, what backward keeps, and errors."""
import math

import numpy as np
import pytest
from hypothesis import given, settings

import tinydl
import tinydl.functional as F
from tinydl import Tensor
from tinydl.gradcheck import gradcheck, gradgradcheck

from catalogue.attention import attention_cases, reference_attention

torch = pytest.importorskip("torch")
sdpa = torch.nn.functional.scaled_dot_product_attention


def _qkv(rng, batch=(2, 3), length=5, source=7, features=4, value_features=6, dtype=np.float64):
    return [rng.standard_normal(batch + shape).astype(dtype)
            for shape in ((length, features), (source, features), (source, value_features))]


def _compare_with_torch(arrays, mask=None, tolerance=1e-12, **kwargs):
    """Forward and the gradients of every input (and of a float mask) against PyTorch."""
    rng = np.random.default_rng(123)
    ours = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    mask_ours = mask_theirs = None
    if mask is not None:
        float_mask = mask.dtype != bool
        mask_ours = Tensor(mask.copy(), requires_grad=float_mask)
        mask_theirs = torch.tensor(mask, requires_grad=float_mask)
    out = F.scaled_dot_product_attention(*ours, attn_mask=mask_ours, **kwargs)
    expected = sdpa(*theirs, attn_mask=mask_theirs, **kwargs)
    upstream = rng.standard_normal(out.shape).astype(arrays[0].dtype)
    (out * Tensor(upstream)).sum().backward()
    (expected * torch.tensor(upstream)).sum().backward()
    assert out.dtype == arrays[0].dtype
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=tolerance, atol=tolerance)
    pairs = list(zip(ours, theirs)) + ([(mask_ours, mask_theirs)] if mask_ours is not None and
                                       mask_ours.requires_grad else [])
    for k, (a, b) in enumerate(pairs):
        assert a.grad.dtype == arrays[0].dtype
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=tolerance, atol=tolerance, err_msg=f"input {k}")


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_plain_attention_matches_pytorch(dtype, tolerance):
    _compare_with_torch(_qkv(np.random.default_rng(0), dtype=dtype), tolerance=tolerance)


@pytest.mark.parametrize("length, source", [(5, 5), (3, 6), (6, 3)])
def test_causal_attention_matches_pytorch(length, source):
    _compare_with_torch(_qkv(np.random.default_rng(1), length=length, source=source), is_causal=True)


@pytest.mark.parametrize("mask_shape", [(5, 7), (1, 7), (3, 5, 7), (2, 1, 5, 7), (2, 3, 5, 7)])
def test_boolean_and_additive_masks_broadcast_as_in_pytorch(mask_shape):
    rng = np.random.default_rng(2)
    arrays = _qkv(rng)
    boolean = rng.random(mask_shape) > 0.3
    boolean[..., 0] = True  # PyTorch gives NaN for fully masked rows; those are tested separately
    _compare_with_torch(arrays, mask=boolean)
    _compare_with_torch(arrays, mask=rng.standard_normal(mask_shape), scale=0.3)


def test_attention_without_batch_dimensions_and_with_shared_keys():
    rng = np.random.default_rng(3)
    _compare_with_torch(_qkv(rng, batch=()))
    query = rng.standard_normal((2, 3, 5, 4))
    key, value = rng.standard_normal((1, 3, 7, 4)), rng.standard_normal((1, 3, 7, 6))
    _compare_with_torch([query, key, value])


def test_fully_masked_rows_give_zeros_and_zero_gradients():
    rng = np.random.default_rng(4)
    arrays = _qkv(rng)
    mask = rng.random((5, 7)) > 0.5
    mask[1] = False
    additive = np.where(mask, 0.0, -math.inf)
    for attn_mask in (Tensor(mask), Tensor(additive)):
        q, k, v = (Tensor(a.copy(), requires_grad=True) for a in arrays)
        out, weights = F.scaled_dot_product_attention(q, k, v, attn_mask, need_weights=True)
        (out.sum() + (weights * weights).sum()).backward()
        assert np.all(out.data[..., 1, :] == 0) and np.all(weights.data[..., 1, :] == 0)
        assert np.all(q.grad.data[..., 1, :] == 0)
        for t in (out, weights, q.grad, k.grad, v.grad):
            assert np.isfinite(t.data).all()
        np.testing.assert_allclose(out.data, reference_attention(*arrays, attn_mask=mask), atol=1e-12)


def test_huge_scores_do_not_overflow():
    rng = np.random.default_rng(5)
    query, key, value = _qkv(rng, dtype=np.float32)
    query *= 1e4  # scores of order 1e4..1e5: exp would overflow without subtracting the row maximum
    _compare_with_torch([query.astype(np.float64), key.astype(np.float64), value.astype(np.float64)],
                        tolerance=1e-7)
    out = F.scaled_dot_product_attention(Tensor(query), Tensor(key), Tensor(value))
    assert out.dtype == np.float32 and np.isfinite(out.data).all()


def test_returned_weights_match_pytorch_softmax_and_are_differentiable():
    rng = np.random.default_rng(6)
    arrays = _qkv(rng)
    ours = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    _, weights = F.scaled_dot_product_attention(*ours, is_causal=True, need_weights=True)
    scores = theirs[0] @ theirs[1].transpose(-1, -2) / 2.0
    scores = scores.masked_fill(~torch.ones(5, 7, dtype=torch.bool).tril(), -math.inf)
    expected = torch.softmax(scores, -1)
    np.testing.assert_allclose(weights.data, expected.detach().numpy(), atol=1e-12)
    upstream = rng.standard_normal(weights.shape)
    (weights * Tensor(upstream)).sum().backward()
    (expected * torch.tensor(upstream)).sum().backward()
    for a, b in zip(ours[:2], theirs[:2]):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), atol=1e-12)
    assert np.all(ours[2].grad.data == 0)


@settings(max_examples=20, deadline=None)
@given(case=attention_cases())
def test_second_derivatives(case):
    tensors = [Tensor(a, requires_grad=True) for a in case.arrays]
    kwargs = dict(case.kwargs)
    mask = kwargs.pop("attn_mask", None)

    def attention(query, key, value, additive=None):
        return F.scaled_dot_product_attention(query, key, value, additive if additive is not None else mask,
                                              **kwargs)
    assert gradgradcheck(attention, tensors)


def test_backward_keeps_only_the_probabilities():
    rng = np.random.default_rng(7)
    q, k, v = (Tensor(a, requires_grad=True) for a in _qkv(rng, length=16, source=16, features=4,
                                                            value_features=4))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    node = out._creator
    saved = [value for value in vars(node).values() if isinstance(value, np.ndarray) and value.dtype.kind == "f"]
    scores_size = 2 * 3 * 16 * 16
    assert [a.size for a in saved if a.size >= scores_size] == [scores_size]  # P; the rest is L x Ev or smaller


# ------------------------------------------------------------------------------------------------------ dropout
def test_dropout_zeroes_weights_at_rate_p_and_rescales_the_rest():
    tinydl.manual_seed(0)
    rng = np.random.default_rng(8)
    arrays = _qkv(rng, batch=(4, 8), length=32, source=32)
    q, k, v = (Tensor(a) for a in arrays)
    _, clean = F.scaled_dot_product_attention(q, k, v, need_weights=True)
    out, dropped = F.scaled_dot_product_attention(q, k, v, dropout_p=0.25, need_weights=True)
    zero_fraction = float(np.mean(dropped.data == 0))
    assert abs(zero_fraction - 0.25) < 0.02
    kept = dropped.data != 0
    np.testing.assert_allclose(dropped.data[kept], clean.data[kept] / 0.75, rtol=1e-12)
    np.testing.assert_allclose(out.data, dropped.data @ arrays[2], atol=1e-12)


def test_dropout_gradients_with_a_fixed_mask():
    rng = np.random.default_rng(9)
    tensors = [Tensor(a, requires_grad=True) for a in _qkv(rng, batch=(2,), length=3, source=4, features=2,
                                                           value_features=2)]

    def attention(query, key, value):
        tinydl.manual_seed(1)  # the same dropout mask at every evaluation
        return F.scaled_dot_product_attention(query, key, value, dropout_p=0.4, need_weights=True)
    assert gradcheck(attention, tensors)
    assert gradgradcheck(attention, tensors)


# ------------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("shapes, kwargs, error, message", [
    (((2, 5, 4), (2, 7, 3), (2, 7, 6)), {}, ValueError, r"query and key need the same feature size"),
    (((2, 5, 4), (2, 7, 4), (2, 6, 6)), {}, ValueError, r"key and value need the same length"),
    (((4,), (7, 4), (7, 6)), {}, ValueError, r"expected query of shape \(\.\.\., length, features\), found \(4,\)"),
    (((2, 5, 4), (3, 7, 4), (3, 7, 6)), {}, ValueError, r"the batch dimensions of query and key do not broadcast together: \(2,\), \(3,\)"),
    (((2, 5, 4), (2, 7, 4), (2, 7, 6)), {"attn_mask": np.ones((5, 6), bool)}, ValueError,
     r"attn_mask of shape \(5, 6\) does not broadcast to the attention scores of shape \(2, 5, 7\)"),
    (((2, 5, 4), (2, 7, 4), (2, 7, 6)), {"attn_mask": np.ones((3, 5, 7), bool)}, ValueError,
     r"attn_mask of shape \(3, 5, 7\) does not broadcast to the attention scores of shape \(2, 5, 7\)"),
    (((2, 5, 4), (2, 7, 4), (2, 7, 6)), {"attn_mask": np.ones((5, 7), np.float32)}, TypeError,
     r"attn_mask must be boolean .* or of the query's dtype float64 .* found float32"),
    (((2, 5, 4), (2, 7, 4), (2, 7, 6)), {"attn_mask": np.ones((5, 7), bool), "is_causal": True}, ValueError,
     r"give either attn_mask or is_causal=True, not both"),
    (((2, 5, 4), (2, 7, 4), (2, 7, 6)), {"dropout_p": 1.0}, ValueError, r"dropout_p must lie in \[0, 1\)"),
])
def test_bad_arguments_raise_naming_the_shapes(shapes, kwargs, error, message):
    tensors = [Tensor(np.zeros(shape)) for shape in shapes]
    kwargs = {key: Tensor(value) if isinstance(value, np.ndarray) else value for key, value in kwargs.items()}
    with pytest.raises(error, match="scaled_dot_product_attention: " + message):
        F.scaled_dot_product_attention(*tensors, **kwargs)
