"""KVCache: decoding one position at a time through the cache gives what full causal attention over the whole
sequence gives; the causal mask with an offset; capacity and shape errors."""
import numpy as np
import pytest

import tinydl.functional as F
from tinydl import Tensor, nn


def _causal_by_steps(q, k, v, steps):
    """Causal grouped-query attention computed chunk by chunk through a KVCache (chunk sizes ``steps``)."""
    cache = nn.KVCache(num_layers=1, batch=q.shape[0], kv_heads=k.shape[1], head_dim=k.shape[3],
                       max_length=q.shape[2], dtype=q.dtype)
    outputs, start = [], 0
    for size in steps:
        end = start + size
        keys, values = cache.update(0, Tensor(k[:, :, start:end]), Tensor(v[:, :, start:end]))
        mask = cache.causal_mask(size)
        outputs.append(F.scaled_dot_product_attention(Tensor(q[:, :, start:end]), keys, values,
                                                      attn_mask=None if mask is None else Tensor(mask),
                                                      enable_gqa=True).numpy())
        cache.advance(size)
        start = end
    return np.concatenate(outputs, axis=2)


@pytest.mark.parametrize("steps", [(7,), (1,) * 7, (3, 1, 1, 2)])
def test_incremental_decoding_equals_full_causal_attention(steps):
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((2, 4, 7, 8)), rng.standard_normal((2, 2, 7, 8)), rng.standard_normal((2, 2, 7, 8))
    full = F.scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), is_causal=True, enable_gqa=True)
    np.testing.assert_allclose(_causal_by_steps(q, k, v, steps), full.numpy(), rtol=1e-12, atol=1e-12)


def test_causal_mask_with_an_offset():
    cache = nn.KVCache(1, 1, 1, 2, max_length=10)
    cache.advance(4)
    mask = cache.causal_mask(3)
    expected = np.array([[j <= 4 + i for j in range(7)] for i in range(3)])
    np.testing.assert_array_equal(mask, expected)
    assert cache.causal_mask(1) is None


def test_cache_is_preallocated_and_returns_views():
    cache = nn.KVCache(2, 1, 3, 4, max_length=6)
    keys_array = cache.keys
    k, v = cache.update(1, Tensor(np.ones((1, 3, 2, 4), np.float32)), Tensor(np.ones((1, 3, 2, 4), np.float32)))
    assert k.shape == (1, 3, 2, 4) and np.shares_memory(k.data, keys_array) and cache.keys is keys_array


def test_cache_errors_name_the_shapes_and_the_capacity():
    cache = nn.KVCache(1, 1, 2, 4, max_length=3)
    with pytest.raises(ValueError, match=r"\(1, 2, T, 4\).*\(1, 3, 1, 4\)"):
        cache.update(0, Tensor(np.zeros((1, 3, 1, 4), np.float32)), Tensor(np.zeros((1, 3, 1, 4), np.float32)))
    cache.advance(2)
    with pytest.raises(ValueError, match="max_length of 3"):
        cache.update(0, Tensor(np.zeros((1, 2, 2, 4), np.float32)), Tensor(np.zeros((1, 2, 2, 4), np.float32)))
