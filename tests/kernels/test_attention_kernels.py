"""The attention kernels (tinydl/kernels/attention.py): the masked softmax without the row-maximum shift against the
shifted one and a float64 reference, the range check that chooses between them, the BLAS row sums, and the plain
raw-array backward against the backward written with tinydl ops (the one a recorded backward uses); the layouts
that make merging and splitting the heads cheap (the output's, and cat's)."""
import math

import numpy as np
import pytest

import tinydl
import tinydl.functional as F
from tinydl import Tensor
from tinydl.kernels.attention import attention_output, attention_weights_, exp_needs_no_shift, row_sums
from tinydl.kernels.causal_attention import is_causal_mask, tile_bounds

FLOAT32_LIMIT = math.log(float(np.finfo(np.float32).max)) / 2   # 44.36


def _reference_softmax(scores, additive=None, allowed=None):
    """Row softmax in float64, shifted by the row maximum, masked rows giving zeros."""
    scores = scores.astype(np.float64) + (0.0 if additive is None else additive)
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
    peak = scores.max(axis=-1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    e = np.exp(scores - peak)
    total = e.sum(axis=-1, keepdims=True)
    return e / np.where(total == 0, 1.0, total)


def test_the_range_check_decides_the_shift():
    scores = np.full((2, 3, 4), 40.0, np.float32)
    assert exp_needs_no_shift(scores)
    assert not exp_needs_no_shift(scores + 5)                     # 45 > 44.36: e^45 * 4 could overflow float32
    assert not exp_needs_no_shift(-scores - 5)                     # a row of e^-45 would lose precision
    assert exp_needs_no_shift(scores.astype(np.float64) + 5)       # float64's limit is 354
    causal = np.triu(np.full((3, 4), -np.inf, np.float32), k=1)
    assert exp_needs_no_shift(scores, causal)                      # -inf entries are masked, not out of range
    assert not exp_needs_no_shift(scores, causal + 5)              # a finite mask adds to the range
    assert not exp_needs_no_shift(scores, np.full((3, 4), -100, np.float32))
    with_nan = scores.copy()
    with_nan[0, 0, 0] = np.nan
    assert not exp_needs_no_shift(with_nan)


@pytest.mark.parametrize("magnitude", [3.0, 40.0, 60.0, 1e4])   # within the limit, near it, beyond it (shifted)
def test_masked_softmax_matches_the_float64_reference(magnitude):
    rng = np.random.default_rng(0)
    scores = (rng.uniform(-1, 1, (2, 3, 6, 7)) * magnitude).astype(np.float32)
    additive = np.triu(np.full((6, 7), -np.inf, np.float32), k=1)
    additive[:, 0] += rng.standard_normal(6).astype(np.float32)
    allowed = rng.random((2, 1, 6, 7)) > 0.3
    allowed[0, 0, 2] = False                                        # a row with every key masked
    assert exp_needs_no_shift(scores, additive) == (magnitude <= 40)
    for mask in ({"additive_mask": additive}, {"allowed": allowed}, {}):
        expected = _reference_softmax(scores, mask.get("additive_mask"), mask.get("allowed"))
        got = attention_weights_(scores.copy(), **mask)
        np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-7)
    assert np.all(attention_weights_(scores.copy(), allowed=allowed)[0, :, 2] == 0)


def test_row_sums_are_sums_of_the_last_axis():
    x = np.random.default_rng(1).random((3, 5, 128)).astype(np.float32)
    np.testing.assert_allclose(row_sums(x), x.sum(axis=-1, keepdims=True), rtol=1e-6)
    assert row_sums(x).shape == (3, 5, 1)


def _gradients(arrays, create_graph, dropout_p=0.0, need_weights=False, mask=None, is_causal=False):
    """Gradients of q, k, v (and of a float mask) from the plain backward or, with ``create_graph``, from the
    backward written with tinydl ops."""
    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    mask_tensor = None if mask is None else Tensor(mask.copy(), requires_grad=mask.dtype != bool)
    tinydl.manual_seed(3)
    result = F.scaled_dot_product_attention(*tensors, mask_tensor, dropout_p=dropout_p, is_causal=is_causal,
                                            need_weights=need_weights)
    outputs = result if need_weights else (result,)
    rng = np.random.default_rng(4)
    loss = sum((o * Tensor(rng.standard_normal(o.shape))).sum() for o in outputs)
    leaves = tensors + ([mask_tensor] if mask_tensor is not None and mask_tensor.requires_grad else [])
    return [g.data for g in tinydl.grad(loss, leaves, create_graph=create_graph)]


@pytest.mark.parametrize("case", [
    dict(), dict(is_causal=True), dict(need_weights=True), dict(dropout_p=0.3, need_weights=True),
    dict(mask="additive"), dict(mask="additive", need_weights=True, dropout_p=0.2),
    dict(mask="boolean", dropout_p=0.2)])
def test_plain_backward_matches_the_backward_of_tinydl_ops(case):
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(shape) for shape in ((2, 3, 5, 4), (1, 3, 6, 4), (1, 3, 6, 2))]
    case = dict(case)
    if case.get("mask") == "additive":
        case["mask"] = rng.standard_normal((5, 6))
    elif case.get("mask") == "boolean":
        case["mask"] = rng.random((2, 1, 5, 6)) > 0.4
    plain, recorded = _gradients(arrays, False, **case), _gradients(arrays, True, **case)
    assert len(plain) == len(recorded)
    for got, expected in zip(plain, recorded):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shapes", [((2, 3, 5, 7), (2, 3, 7, 4)), ((3, 5, 7), (3, 7, 4)), ((5, 7), (7, 4)),
                                    ((2, 3, 5, 7), (1, 3, 7, 4))])
def test_the_output_is_the_product_laid_out_heads_inside(shapes):
    rng = np.random.default_rng(5)
    weights, v = (rng.standard_normal(shape) for shape in shapes)
    output = attention_output(weights, v)
    np.testing.assert_allclose(output, weights @ v, rtol=1e-13, atol=1e-13)
    if len(shapes[0]) >= 3 and shapes[0][:-2] == shapes[1][:-2]:   # a heads axis: (..., L, H, Ev) in memory
        assert np.swapaxes(output, -3, -2).flags.c_contiguous


def test_merging_and_splitting_heads_copy_once():
    """A cat of transposed views is C-contiguous (so the reshape after it is a view), and the attention output
    merges into (N, L, H Ev) without a copy."""
    rng = np.random.default_rng(6)
    pieces = [tinydl.tensor(rng.standard_normal((2, 3, 5, 4))).transpose(1, 2).unsqueeze(2) for _ in range(3)]
    joined = F.cat(pieces, 2)
    assert joined.data.flags.c_contiguous
    np.testing.assert_array_equal(joined.data, np.concatenate([p.data for p in pieces], axis=2))
    q, k, v = (tinydl.tensor(rng.standard_normal((2, 3, 5, 4))) for _ in range(3))
    heads = F.scaled_dot_product_attention(q, k, v)
    merged = heads.transpose(1, 2).reshape(2, 5, 12)
    assert np.shares_memory(merged.data, heads.data)


# ------------------------------------------------------------------------------------------- causal tiles
def test_causal_masks_are_recognised_exactly():
    length = 8
    tril = np.tril(np.ones((length, length), bool))
    additive = np.triu(np.full((length, length), -np.inf), k=1)
    assert is_causal_mask(np, length, allowed=tril)
    assert is_causal_mask(np, length, allowed=tril[None, None])
    assert is_causal_mask(np, length, additive_mask=additive.astype(np.float32))
    assert not is_causal_mask(np, length)                                             # no mask
    assert not is_causal_mask(np, length, allowed=np.tril(np.ones((length, length), bool), k=-1))
    assert not is_causal_mask(np, length, additive_mask=np.triu(np.full((length, length), -np.inf), k=2))
    assert not is_causal_mask(np, length, additive_mask=np.triu(np.full((length, length), -1e9), k=1))
    assert not is_causal_mask(np, length, allowed=np.broadcast_to(tril, (2, length, length)))  # one per batch
    assert not is_causal_mask(np, length + 1, allowed=tril)


@pytest.mark.parametrize("length", [64, 70, 128])
def test_tiles_cover_every_query_once(length):
    bounds = tile_bounds(length, 4)
    assert bounds[0][0] == 0 and bounds[-1][1] == length
    assert all(b1 == a2 for (_, b1), (a2, _) in zip(bounds, bounds[1:]))


@pytest.mark.parametrize("length, mask", [(64, "is_causal"), (70, "boolean"), (64, "additive"), (96, "additive")])
def test_causal_tiles_match_pytorch(length, mask):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    arrays = [rng.standard_normal((2, 3, length, 8)) for _ in range(3)]
    tril = np.tril(np.ones((length, length), bool))
    kwargs = {"is_causal": {"is_causal": True}, "boolean": {"attn_mask": tril},
              "additive": {"attn_mask": np.where(tril, 0.0, -np.inf)}}[mask]
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = F.scaled_dot_product_attention(*ours, **{k: Tensor(v) if isinstance(v, np.ndarray) else v
                                                   for k, v in kwargs.items()})
    expected = torch.nn.functional.scaled_dot_product_attention(
        *theirs, **{k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()})
    assert out._creator.causal_tiles
    tiles = out._creator.probabilities
    assert sum(t[0, 0].size for t in tiles) < 0.7 * length * length      # about 5/8 of the dense P is kept
    upstream = rng.standard_normal(out.shape)
    (out * Tensor(upstream)).sum().backward()
    (expected * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_second_derivatives_through_causal_tiles_match_pytorch():
    """The forward in tiles, then a recorded backward (create_graph), which recomputes P densely from Q and K."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    arrays = [rng.standard_normal((2, 64, 3)) for _ in range(3)]
    upstream = rng.standard_normal((2, 64, 3))
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = F.scaled_dot_product_attention(*ours, is_causal=True)
    assert out._creator.causal_tiles
    (grad_q,) = tinydl.grad((out * Tensor(upstream)).sum(), ours[0], create_graph=True)
    (grad_q * grad_q).sum().backward()
    expected = torch.nn.functional.scaled_dot_product_attention(*theirs, is_causal=True)
    (expected_q,) = torch.autograd.grad((expected * torch.tensor(upstream)).sum(), theirs[0], create_graph=True)
    (expected_q * expected_q).sum().backward()
    np.testing.assert_allclose(grad_q.data, expected_q.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("wanted", [(True, False, False), (False, True, True), (False, False, True)])
def test_causal_tiles_give_only_the_wanted_gradients(wanted):
    rng = np.random.default_rng(8)
    tensors = [Tensor(rng.standard_normal((2, 64, 4)), requires_grad=w) for w in wanted]
    plain = [Tensor(t.data, requires_grad=w) for t, w in zip(tensors, wanted)]
    out = F.scaled_dot_product_attention(*tensors, is_causal=True)
    assert out._creator.causal_tiles
    out.sum().backward()
    tinydl.manual_seed(0)   # the dense path, through a dropout of probability ~0 (the tiles take no dropout)
    dense = F.scaled_dot_product_attention(*plain, is_causal=True, dropout_p=1e-300)
    assert not dense._creator.causal_tiles
    dense.sum().backward()
    for a, b, w in zip(tensors, plain, wanted):
        assert (a.grad is None) == (not w)
        if w:
            np.testing.assert_allclose(a.grad.data, b.grad.data, rtol=1e-12, atol=1e-13)


def test_tiles_count_only_the_scores_they_compute_and_broadcast_keys_stay_dense():
    rng = np.random.default_rng(9)
    q, k, v = (Tensor(rng.standard_normal((2, 3, 64, 8)), requires_grad=True) for _ in range(3))
    tiled = F.scaled_dot_product_attention(q, k, v, is_causal=True)._creator
    shared = Tensor(rng.standard_normal((1, 3, 64, 8)))            # keys shared by the batch: the dense path
    dense = F.scaled_dot_product_attention(q, shared, shared, is_causal=True)._creator
    assert tiled.causal_tiles and not dense.causal_tiles
    arrays = [t.data for t in (q, k, v)]
    scores = 2 * 3 * 64 * 64
    assert tiled.flops(arrays, []) - k.size == (5 / 8) * (dense.flops(arrays, []) - k.size)
    assert tiled._score_count(q.data, k.data) == 5 * scores // 8
