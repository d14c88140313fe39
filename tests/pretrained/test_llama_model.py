"""tinydl's LlamaModel on the real SmolLM2-135M GGUF weights against transformers' LlamaForCausalLM on the same
dequantised weights (the references in smollm2_reference.npz, made by make_model_references.py), and its
bad-input errors."""
import numpy as np
import pytest

import tinydl
from tinydl.io.gguf import GGUFFile
from tinydl.models import LlamaConfig, LlamaModel, WeightsMismatchError
from tinydl.models._weights import load_weights
from tinydl.models.llama import llama_sources

from .weights import reference, smollm2_file


@pytest.fixture(scope="module")
def path():
    return smollm2_file()


@pytest.fixture(scope="module")
def model(path):
    return LlamaModel.from_gguf(path)


@pytest.fixture(scope="module")
def expected():
    return reference("smollm2_reference.npz")


def test_config_comes_from_the_metadata(model):
    config = model.config
    assert (config.num_layers, config.hidden_size, config.intermediate_size, config.num_heads,
            config.num_kv_heads, config.head_dim, config.vocab_size) == (30, 576, 1536, 9, 3, 64, 49152)
    assert config.rope_theta == 1e5 and config.rms_norm_eps == pytest.approx(1e-5)


@pytest.mark.parametrize("prompt", [0, 1])
def test_logits_match_transformers(model, expected, prompt):
    ids = expected[f"prompt{prompt}_ids"][None]
    with tinydl.no_grad():
        logits = model(ids).numpy()[0]
    assert logits.dtype == np.float32 and logits.shape == (ids.shape[1], 49152)
    sliced = expected[f"prompt{prompt}_logits_slice"]
    np.testing.assert_allclose(logits[:, :sliced.shape[1]], sliced, rtol=0, atol=1e-3)
    np.testing.assert_allclose(logits[-1], expected[f"prompt{prompt}_logits_last"], rtol=0, atol=1e-3)


def test_cached_decoding_gives_the_logits_of_the_full_forward(model, expected):
    ids = expected["prompt0_ids"][None]
    cache = model.new_cache(1, ids.shape[1])
    with tinydl.no_grad():
        full = model(ids).numpy()[0]
        first = model(ids[:, :3], cache=cache).numpy()[0]
        steps = [model(ids[:, t:t + 1], cache=cache).numpy()[0, 0] for t in range(3, ids.shape[1])]
    np.testing.assert_allclose(np.vstack([first] + steps), full, rtol=0, atol=2e-4)


@pytest.mark.parametrize("prompt", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_greedy_continuation_is_the_reference_one(model, expected, prompt):
    ids = expected[f"prompt{prompt}_ids"]
    greedy = expected[f"prompt{prompt}_greedy"]
    streamed = []
    result = model.generate(ids, max_new_tokens=len(greedy) - len(ids), callback=lambda new: streamed.append(new))
    np.testing.assert_array_equal(result, greedy)
    np.testing.assert_array_equal(np.concatenate(streamed), greedy[len(ids):])


def test_too_many_positions_is_an_error(model):
    with pytest.raises(ValueError, match=r"8190 prompt tokens \+ 10 new ones exceed the model's 8192 positions"):
        model.generate(np.zeros(8190, dtype=np.int64), 10)


def test_a_config_that_does_not_fit_the_file_names_tensor_and_shapes(path):
    gguf = GGUFFile(path)
    config = LlamaConfig(num_layers=1, intermediate_size=1000)
    shapes = {name: info.shape for name, info in gguf.tensors.items()}
    with pytest.raises(WeightsMismatchError, match=r"SmolLM2.*'blk\.0\.ffn_gate\.weight' has shape \(1536, 576\)"
                                                   r".*expect \(1000, 576\)"):
        load_weights(LlamaModel(config), llama_sources(config), shapes, gguf.tensor, f"GGUF file '{path}'")
