"""MultiheadAttention against PyTorch (same weights, float64): layouts, masks, returned weights, and errors."""
import numpy as np
import pytest

import tinydl
import tinydl.nn as nn

from .oracle import copy_weights

torch = pytest.importorskip("torch")

E, HEADS, L, S, N = 8, 2, 5, 6, 3


def _pair(**options):
    theirs = torch.nn.MultiheadAttention(E, HEADS, **options).double()
    ours = nn.MultiheadAttention(E, HEADS, **options).double()
    copy_weights(ours, theirs)
    return ours, theirs


def _convert(value, library):
    if isinstance(value, np.ndarray):
        return tinydl.tensor(value) if library is tinydl else torch.tensor(value)
    return value


def _compare(ours, theirs, arrays, self_attention=False, tolerance=1e-12, **kwargs):
    """Forward and backward of both modules; outputs, weights, input and parameter gradients must agree."""
    rng = np.random.default_rng(0)
    ours_inputs = [tinydl.tensor(a, requires_grad=True) for a in arrays]
    their_inputs = [torch.tensor(a, requires_grad=True) for a in arrays]
    if self_attention:
        ours_inputs, their_inputs = ours_inputs * 3, their_inputs * 3
    out, weights = ours(*ours_inputs, **{k: _convert(v, tinydl) for k, v in kwargs.items()})
    expected, expected_weights = theirs(*their_inputs, **{k: _convert(v, torch) for k, v in kwargs.items()})
    upstream = rng.standard_normal(tuple(expected.shape))
    loss_ours = (out * tinydl.tensor(upstream)).sum()
    loss_theirs = (expected * torch.tensor(upstream)).sum()
    if expected_weights is None:
        assert weights is None
    else:
        weighting = rng.standard_normal(tuple(expected_weights.shape))
        np.testing.assert_allclose(weights.data, expected_weights.detach().numpy(), rtol=tolerance, atol=tolerance)
        loss_ours = loss_ours + (weights * tinydl.tensor(weighting)).sum()
        loss_theirs = loss_theirs + (expected_weights * torch.tensor(weighting)).sum()
    loss_ours.backward()
    loss_theirs.backward()
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=tolerance, atol=tolerance)
    for k, (a, b) in enumerate(zip(ours_inputs[:len(arrays)], their_inputs[:len(arrays)])):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=tolerance, atol=tolerance, err_msg=f"input {k}")
    their_parameters = dict(theirs.named_parameters())
    for name, parameter in ours.named_parameters():
        np.testing.assert_allclose(parameter.grad.data, their_parameters[name].grad.numpy(), rtol=tolerance,
                                   atol=tolerance, err_msg=name)


def _inputs(batch_first, rng, lengths=(L, S, S)):
    return [rng.standard_normal((N, n, E) if batch_first else (n, N, E)) for n in lengths]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("average", [True, False])
def test_cross_attention_and_weights_match_pytorch(batch_first, average):
    ours, theirs = _pair(batch_first=batch_first)
    _compare(ours, theirs, _inputs(batch_first, np.random.default_rng(1)), average_attn_weights=average)


@pytest.mark.parametrize("batch_first", [False, True])
def test_self_attention_uses_one_projection_and_matches_pytorch(batch_first):
    ours, theirs = _pair(batch_first=batch_first)
    _compare(ours, theirs, _inputs(batch_first, np.random.default_rng(2), (L,)), self_attention=True,
             need_weights=False)


def test_masks_match_pytorch():
    rng = np.random.default_rng(3)
    padding = rng.random((N, S)) > 0.6
    padding[:, 0] = False  # PyTorch gives NaN for queries whose keys are all masked
    blocked = rng.random((L, S)) > 0.7
    blocked[:, 0] = False
    per_head = rng.random((N * HEADS, L, S)) > 0.7
    per_head[..., 0] = False
    additive = rng.standard_normal((L, S))
    ours, theirs = _pair()
    for masks in ({"key_padding_mask": padding}, {"attn_mask": blocked}, {"attn_mask": per_head},
                  {"attn_mask": additive}, {"key_padding_mask": padding, "attn_mask": blocked},
                  {"key_padding_mask": np.where(padding, -np.inf, 0.0), "attn_mask": additive}):
        ours.zero_grad(), theirs.zero_grad()
        _compare(ours, theirs, _inputs(False, rng), **masks)


def test_causal_flag_with_and_without_padding():
    rng = np.random.default_rng(4)
    causal = np.triu(np.ones((L, L), bool), 1)
    padding = rng.random((N, L)) > 0.7
    padding[:, 0] = False
    ours, theirs = _pair(batch_first=True)
    x = _inputs(True, rng, (L,))
    for extra in ({}, {"key_padding_mask": padding}):
        ours.zero_grad(), theirs.zero_grad()
        # PyTorch needs the mask itself with the hint; tinydl builds it from is_causal alone
        reference = tinydl.tensor(x[0])
        expected, _ = theirs(*[torch.tensor(x[0])] * 3, attn_mask=torch.tensor(causal), is_causal=True,
                             need_weights=False, **{k: torch.tensor(v) for k, v in extra.items()})
        out, _ = ours(reference, reference, reference, is_causal=True, need_weights=False,
                      **{k: tinydl.tensor(v) for k, v in extra.items()})
        np.testing.assert_allclose(out.data, expected.detach().numpy(), atol=1e-12)


def test_unbatched_input_matches_pytorch():
    ours, theirs = _pair()
    rng = np.random.default_rng(5)
    _compare(ours, theirs, [rng.standard_normal((n, E)) for n in (L, S, S)])


def test_without_bias_and_parameter_layout():
    ours, theirs = _pair(bias=False)
    assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    _compare(ours, theirs, _inputs(False, np.random.default_rng(6)))


def test_initialisation_follows_pytorch():
    tinydl.manual_seed(0)
    attention = nn.MultiheadAttention(64, 4)
    bound = np.sqrt(6 / (64 + 3 * 64))  # xavier_uniform_ on the (3E, E) in_proj_weight
    weights = attention.in_proj_weight.data
    assert np.abs(weights).max() <= bound and np.abs(weights).max() > 0.95 * bound
    assert np.all(attention.in_proj_bias.data == 0) and np.all(attention.out_proj.bias.data == 0)


def test_fully_padded_queries_give_zeros_not_nan():
    ours, _ = _pair(batch_first=True)
    x = tinydl.tensor(np.random.default_rng(7).standard_normal((2, 4, E)), requires_grad=True)
    padding = np.zeros((2, 4), bool)
    padding[1] = True  # every key of sample 1 is padding
    out, weights = ours(x, x, x, key_padding_mask=tinydl.tensor(padding))
    out.sum().backward()
    assert np.isfinite(out.data).all() and np.isfinite(x.grad.data).all()
    assert np.all(weights.data[1] == 0)
    np.testing.assert_allclose(out.data[1], np.broadcast_to(ours.out_proj.bias.data, (4, E)))


def test_dropout_only_in_training():
    tinydl.manual_seed(1)
    attention = nn.MultiheadAttention(E, HEADS, dropout=0.5).double()
    x = tinydl.tensor(np.random.default_rng(8).standard_normal((L, N, E)))
    first, second = attention(x, x, x)[0], attention(x, x, x)[0]
    assert not np.allclose(first.data, second.data)
    attention.eval()
    np.testing.assert_array_equal(attention(x, x, x)[0].data, attention(x, x, x)[0].data)


@pytest.mark.parametrize("make, message", [
    (lambda: nn.MultiheadAttention(10, 4), r"MultiheadAttention: embed_dim 10 is not divisible by num_heads 4"),
    (lambda: nn.MultiheadAttention(E, HEADS)(*[tinydl.zeros(L, N, 6)] * 3),
     r"MultiheadAttention: expected query with embed_dim=8 features, found shape \(5, 3, 6\)"),
    (lambda: nn.MultiheadAttention(E, HEADS)(tinydl.zeros(L, N, E), tinydl.zeros(S, N, E), tinydl.zeros(4, N, E)),
     r"key and value must have the same length and batch, found \(6, 3, 8\) and \(4, 3, 8\)"),
    (lambda: nn.MultiheadAttention(E, HEADS)(*[tinydl.zeros(L, N, E)] * 3, key_padding_mask=tinydl.zeros(N, 4)),
     r"expected key_padding_mask of shape \(3, 5\) \(batch, source length\), found \(3, 4\)"),
    (lambda: nn.MultiheadAttention(E, HEADS)(*[tinydl.zeros(L, N, E)] * 3, attn_mask=tinydl.zeros(4, 5)),
     r"expected attn_mask of shape \(5, 5\) or \(6, 5, 5\), found \(4, 5\)"),
])
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()
