"""The kernels of Llama-family models against PyTorch: silu, rms_norm, rotary position embedding, grouped-query
attention (forward, gradients, second derivatives), and the rotary tables' relative-position property."""
import numpy as np
import pytest

import tinydl.functional as F
from tinydl import Tensor, nn

from .torch_oracle import check_against_torch

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _torch_rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def _torch_rotary(x, cos, sin):
    """Hugging Face's apply_rotary_pos_emb for one tensor."""
    return x * cos + _torch_rotate_half(x) * sin


def test_silu_matches_torch_to_second_order():
    rng = np.random.default_rng(0)
    check_against_torch(rng, F.silu, TF.silu, [rng.standard_normal((3, 5)) * 4])


def test_rms_norm_matches_torch_to_second_order():
    rng = np.random.default_rng(1)
    x, weight = rng.standard_normal((2, 3, 6)), rng.standard_normal(6)
    check_against_torch(rng, lambda a, w: F.rms_norm(a, w, 1e-5),
                        lambda a, w: TF.rms_norm(a, (6,), w, 1e-5), [x, weight])


def test_rms_norm_module_matches_torch_float32():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 576)).astype(np.float32) * 3
    ours = nn.RMSNorm(576, eps=1e-5)
    ours.weight.data[...] = rng.standard_normal(576).astype(np.float32)
    theirs = torch.nn.RMSNorm(576, eps=1e-5)
    theirs.weight.data = torch.tensor(ours.weight.data)
    out = ours(Tensor(x))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_rotary_tables_match_the_hugging_face_formula():
    positions = np.array([0, 1, 7, 300])
    cos, sin = nn.rotary_cos_sin(positions, 64, theta=1e5, dtype="float64")
    inv_freq = 1.0 / (1e5 ** (torch.arange(0, 64, 2, dtype=torch.float64) / 64))
    angles = torch.tensor(positions, dtype=torch.float64)[:, None] * inv_freq[None]
    emb = torch.cat([angles, angles], dim=-1)
    np.testing.assert_allclose(cos.numpy(), emb.cos().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sin.numpy(), emb.sin().numpy(), rtol=1e-12, atol=1e-12)


def test_apply_rotary_matches_torch_to_second_order():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 5, 8))
    cos, sin = (t.numpy() for t in nn.rotary_cos_sin(np.arange(5), 8, dtype="float64"))
    check_against_torch(rng, F.apply_rotary, _torch_rotary, [x, cos, sin])


def test_rotary_scores_depend_on_the_relative_position_only():
    rng = np.random.default_rng(4)
    q, k = (Tensor(rng.standard_normal((1, 16))) for _ in range(2))

    def score(p, s):
        cq, sq = nn.rotary_cos_sin([p], 16, dtype="float64")
        ck, sk = nn.rotary_cos_sin([s], 16, dtype="float64")
        return float((F.apply_rotary(q, cq, sq) * F.apply_rotary(k, ck, sk)).sum().item())

    assert score(3, 1) == pytest.approx(score(10, 8), abs=1e-12)
    assert score(0, 5) == pytest.approx(score(20, 25), abs=1e-12)
    assert score(3, 1) != pytest.approx(score(3, 2), abs=1e-6)


@pytest.mark.parametrize("causal", [False, True])
def test_grouped_query_attention_matches_torch_with_gradients(causal):
    rng = np.random.default_rng(5)
    q = rng.standard_normal((2, 6, 4, 8))
    k, v = rng.standard_normal((2, 2, 4, 8)), rng.standard_normal((2, 2, 4, 5))

    def ours(a, b, c):
        return F.scaled_dot_product_attention(a, b, c, is_causal=causal, enable_gqa=True)

    def theirs(a, b, c):
        return TF.scaled_dot_product_attention(a, b, c, is_causal=causal, enable_gqa=True)

    check_against_torch(rng, ours, theirs, [q, k, v])


def test_grouped_query_attention_shares_kv_heads_by_contiguous_groups():
    """Query heads 0..G-1 use key/value head 0, heads G..2G-1 head 1, ... (repeat_interleave), and a per-head
    boolean mask is applied to the right query head."""
    rng = np.random.default_rng(6)
    q, k, v = rng.standard_normal((9, 3, 4)), rng.standard_normal((3, 5, 4)), rng.standard_normal((3, 5, 2))
    mask = rng.random((9, 3, 5)) > 0.3
    out = F.scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), attn_mask=Tensor(mask), enable_gqa=True)
    expected = TF.scaled_dot_product_attention(
        torch.tensor(q), torch.tensor(k).repeat_interleave(3, 0), torch.tensor(v).repeat_interleave(3, 0),
        attn_mask=torch.tensor(mask))
    np.testing.assert_allclose(out.numpy(), np.nan_to_num(expected.numpy()), rtol=1e-12, atol=1e-12)


def test_swiglu_matches_torch():
    rng = np.random.default_rng(7)
    block = nn.SwiGLU(6, 10)
    x = rng.standard_normal((2, 3, 6)).astype(np.float32)
    gate_up, down = torch.tensor(block.gate_up_proj.weight.data), torch.tensor(block.down_proj.weight.data)
    gate, up = gate_up[:10], gate_up[10:]
    xt = torch.tensor(x)
    expected = (TF.silu(xt @ gate.T) * (xt @ up.T)) @ down.T
    np.testing.assert_allclose(block(Tensor(x)).numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    assert [name for name, _ in block.named_parameters()] == ["gate_up_proj.weight", "down_proj.weight"]
