"""tinydl's BertModel on the real all-MiniLM-L6-v2 weights against transformers / sentence-transformers (the
references in minilm_reference.npz, made by make_model_references.py), and its bad-input errors."""
import json
import shutil

import numpy as np
import pytest

import tinydl
from tinydl.models import BertModel, WeightsMismatchError, mean_pool

from .weights import minilm_folder, reference


@pytest.fixture(scope="module")
def folder():
    return minilm_folder()


@pytest.fixture(scope="module")
def model(folder):
    return BertModel.from_pretrained(folder)


@pytest.fixture(scope="module")
def expected():
    return reference("minilm_reference.npz")


def _hidden(model, expected):
    with tinydl.no_grad():
        return model(expected["input_ids"], expected["attention_mask"], expected["token_type_ids"]).numpy()


def test_last_hidden_states_match_transformers_on_a_padded_batch(model, expected):
    hidden, mask = _hidden(model, expected), expected["attention_mask"].astype(bool)
    assert hidden.dtype == np.float32 and hidden.shape == expected["last_hidden_state"].shape
    assert (~mask).any(), "the reference batch should contain padding"
    difference = np.abs(hidden - expected["last_hidden_state"])
    assert difference[mask].max() < 1e-4
    # padded positions (never pooled) are computed as transformers does, up to float32 rounding of larger values
    assert difference[~mask].max() < 5e-4


def test_sentence_embeddings_match_sentence_transformers(model, expected):
    hidden = tinydl.Tensor(_hidden(model, expected))
    embeddings = mean_pool(hidden, expected["attention_mask"], normalize=True).numpy()
    np.testing.assert_allclose(embeddings, expected["embeddings"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-6)


def test_a_sentence_alone_gives_its_padded_batch_embedding(model, expected):
    """Padding changes nothing for the real tokens: each sentence encoded alone matches the batch."""
    lengths = expected["attention_mask"].sum(axis=1)
    shortest = int(np.argmin(lengths))
    ids = expected["input_ids"][shortest:shortest + 1, :lengths[shortest]]
    with tinydl.no_grad():
        alone = mean_pool(model(ids), np.ones_like(ids), normalize=True).numpy()
    np.testing.assert_allclose(alone[0], expected["embeddings"][shortest], rtol=0, atol=1e-5)


def test_too_long_input_is_an_error_that_gives_the_length(model):
    with pytest.raises(ValueError, match=r"513 tokens.*512 positions"):
        model(np.zeros((1, 513), dtype=np.int64))


def _copy_with_config(folder, tmp_path, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (tmp_path / "config.json").write_text(json.dumps(config))
    shutil.copy(folder / "model.safetensors", tmp_path / "model.safetensors")
    return tmp_path


def test_a_config_with_other_shapes_names_file_tensor_and_shapes(folder, tmp_path):
    bad = _copy_with_config(folder, tmp_path, intermediate_size=1000)
    with pytest.raises(WeightsMismatchError, match=r"model\.safetensors.*'encoder\.layer\.0\.intermediate\.dense"
                                                   r"\.weight' has shape \(1536, 384\).*expect \(1000, 384\)"):
        BertModel.from_pretrained(bad)


def test_a_config_with_more_layers_names_the_missing_tensor(folder, tmp_path):
    bad = _copy_with_config(folder, tmp_path, num_hidden_layers=7)
    with pytest.raises(WeightsMismatchError, match=r"no tensor 'encoder\.layer\.6\."):
        BertModel.from_pretrained(bad)


def test_a_config_with_fewer_layers_names_the_unused_tensors(folder, tmp_path):
    bad = _copy_with_config(folder, tmp_path, num_hidden_layers=5)
    with pytest.raises(WeightsMismatchError, match=r"have no place.*'encoder\.layer\.5\."):
        BertModel.from_pretrained(bad)


def test_a_missing_weight_file_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        BertModel.from_pretrained(tmp_path)
