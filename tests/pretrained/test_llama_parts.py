"""The parts of LlamaModel that need no weight file: the Q/K row permutation of llama.cpp's converter and its
inverse, cached generation on a small random model, and token sampling."""
import numpy as np
import pytest

import tinydl
from tinydl.models import LlamaConfig, LlamaModel, sample_next_token, undo_rotary_permutation

TINY = LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=24, num_layers=2, num_heads=4, num_kv_heads=2,
                   rope_theta=1e4, max_positions=32)


def converter_permute(weight, heads):
    """llama.cpp convert_hf_to_gguf.py's permute: each head's rows viewed as (2, D/2) and transposed."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2) \
        .reshape(weight.shape)


def interleaved_rotary(x, positions, theta):
    """Rotary encoding on neighbouring pairs (2i, 2i + 1), as llama.cpp applies it to GGUF weights."""
    half = x.shape[-1] // 2
    angles = positions[:, None] * theta ** (-np.arange(half) * 2 / x.shape[-1])
    pairs = x.reshape(*x.shape[:-1], half, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    rotated = np.stack([a * np.cos(angles) - b * np.sin(angles), a * np.sin(angles) + b * np.cos(angles)], axis=-1)
    return rotated.reshape(x.shape)


def test_undo_rotary_permutation_inverts_the_converter():
    weight = np.random.default_rng(0).standard_normal((3 * 8, 5))
    np.testing.assert_array_equal(undo_rotary_permutation(converter_permute(weight, 3), 3), weight)


def test_rotate_half_on_restored_rows_equals_interleaved_rotary_on_stored_rows():
    """Scores q.k are the same either way: the two conventions differ by a fixed permutation per head."""
    rng = np.random.default_rng(1)
    heads, head_dim, width, length = 2, 8, 6, 5
    hf_weight = rng.standard_normal((heads * head_dim, width))
    stored = converter_permute(hf_weight, heads)
    x, positions = rng.standard_normal((length, width)), np.arange(length, dtype=np.float64)
    cos, sin = tinydl.nn.rotary_cos_sin(positions, head_dim, 1e4, dtype="float64")
    ours = tinydl.functional.apply_rotary(
        tinydl.Tensor((x @ undo_rotary_permutation(stored, heads).T).reshape(length, heads, head_dim)
                      .transpose(1, 0, 2)), cos, sin).numpy()
    theirs = interleaved_rotary((x @ stored.T).reshape(length, heads, head_dim).transpose(1, 0, 2), positions, 1e4)
    np.testing.assert_allclose(ours @ ours.transpose(0, 2, 1), theirs @ theirs.transpose(0, 2, 1), atol=1e-10)


@pytest.fixture(scope="module")
def tiny():
    tinydl.manual_seed(0)
    return LlamaModel(TINY).eval()


def test_cached_greedy_generation_equals_argmax_of_full_forwards(tiny):
    ids = np.array([[3, 14, 15, 9], [2, 6, 5, 3]])
    result = tiny.generate(ids, 6)
    expected = ids
    with tinydl.no_grad():
        for _ in range(6):
            next_ids = tiny(expected).numpy()[:, -1].argmax(-1)
            expected = np.concatenate([expected, next_ids[:, None]], axis=1)
    np.testing.assert_array_equal(result, expected)


def test_sampling_is_reproducible_with_a_seed_and_top_k_1_is_greedy(tiny):
    ids = np.array([1, 2, 3])
    first = tiny.generate(ids, 5, temperature=1.0, top_p=0.9, seed=7)
    assert first.shape == (8,)
    np.testing.assert_array_equal(first, tiny.generate(ids, 5, temperature=1.0, top_p=0.9, seed=7))
    np.testing.assert_array_equal(tiny.generate(ids, 5, temperature=0.7, top_k=1, seed=3), tiny.generate(ids, 5))


def test_generation_stops_after_the_end_token_in_every_row(tiny):
    ids = np.array([[1, 2]])
    free = tiny.generate(ids, 4)
    stopped = tiny.generate(ids, 4, eos_token_id=int(free[0, 2]))
    np.testing.assert_array_equal(stopped, free[:, :3])


def test_top_k_and_top_p_keep_the_right_tokens():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    rng = np.random.default_rng(0)
    draws = {int(sample_next_token(logits, 1.0, top_k=2, rng=rng)[0]) for _ in range(200)}
    assert draws == {0, 1}
    draws = {int(sample_next_token(logits, 1.0, top_p=0.85, rng=rng)[0]) for _ in range(300)}
    assert draws == {0, 1, 2}                # 0.5 + 0.3 < 0.85: the third token is needed to reach it
    assert {int(sample_next_token(logits, 1.0, top_p=0.4, rng=rng)[0]) for _ in range(50)} == {0}
    counts = np.bincount([int(sample_next_token(logits, 1.0, rng=rng)[0]) for _ in range(4000)], minlength=4)
    np.testing.assert_allclose(counts / 4000, [0.5, 0.3, 0.15, 0.05], atol=0.03)


def test_sampling_arguments_are_checked():
    with pytest.raises(ValueError, match="top_p"):
        sample_next_token(np.zeros((1, 3)), 1.0, top_p=1.5)
    with pytest.raises(ValueError, match="temperature"):
        sample_next_token(np.zeros((1, 3)), -1.0)
