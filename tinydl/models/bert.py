"""BERT (Devlin et al., 2019), the encoder of sentence-transformers' all-MiniLM-L6-v2, built from tinydl's own
layers and loaded from a Hugging Face folder (``config.json`` + ``model.safetensors``).

    x = LayerNorm(word_embeddings[ids] + position_embeddings[0..T-1] + token_type_embeddings[types])
    x = TransformerEncoderLayer(x)  (num_hidden_layers times: post-LayerNorm, exact-erf GELU, eps 1e-12)

The encoder layers are :class:`tinydl.nn.TransformerEncoderLayer` (PyTorch's layout): a BERT layer is exactly a
post-norm encoder layer whose query, key and value projections are stacked into ``in_proj_weight``. The file's
tensor names map onto tinydl's as docs/pretrained.md lists them (:func:`bert_sources`).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any


from .. import functional as F
from ..backend import array_module_for, device_of
from ..functional.elementwise import constant
from ..nn import Dropout, Embedding, LayerNorm, Module, TransformerEncoder, TransformerEncoderLayer
from ..tensor import Tensor
from ._weights import Source, load_weights

__all__ = ["BertConfig", "BertModel", "mean_pool"]


@dataclasses.dataclass
class BertConfig:
    """The sizes of a BERT encoder (the fields of a Hugging Face ``config.json`` that tinydl uses)."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    hidden_act: str = "gelu"

    @classmethod
    def from_json(cls, path: str | Path) -> "BertConfig":
        """Read a ``config.json``; unknown keys are ignored, an activation other than exact GELU is refused."""
        with open(path, encoding="utf-8") as file:
            values = json.load(file)
        config = cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})
        if config.hidden_act != "gelu":
            raise ValueError(f"{path}: hidden_act {config.hidden_act!r} is not supported; tinydl's BertModel uses "
                             "the exact-erf 'gelu'")
        return config


class BertEmbeddings(Module):
    """LayerNorm(word + position + token-type embeddings), then dropout."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: Any, token_type_ids: Any) -> Tensor:
        xp = array_module_for(device_of(self.word_embeddings.weight.data))
        positions = xp.arange(input_ids.shape[1])
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) \
            + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.norm(x))


class BertModel(Module):
    """BERT's encoder: ``model(input_ids, attention_mask=None, token_type_ids=None)`` -> the last hidden state
    (N, T, hidden_size). ``input_ids`` (N, T) integers; ``attention_mask`` (N, T), 1 for real tokens and 0 for
    padding (whose keys are masked out); ``token_type_ids`` (N, T), zeros by default."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        layer = TransformerEncoderLayer(config.hidden_size, config.num_attention_heads, config.intermediate_size,
                                        dropout=config.hidden_dropout_prob, activation="gelu",
                                        layer_norm_eps=config.layer_norm_eps, batch_first=True)
        self.encoder = TransformerEncoder(layer, config.num_hidden_layers)

    def forward(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None) -> Tensor:
        xp = array_module_for(device_of(self.embeddings.word_embeddings.weight.data))
        input_ids = _integers("input_ids", input_ids, xp)
        if input_ids.ndim != 2:
            raise ValueError(f"BertModel: expected input_ids of shape (batch, length), found {input_ids.shape}")
        length, limit = input_ids.shape[1], self.config.max_position_embeddings
        if length > limit:
            raise ValueError(f"BertModel: a sequence of {length} tokens is longer than the model's {limit} "
                             f"positions; truncate it (e.g. encode_batch(texts, max_length={limit}))")
        token_type_ids = xp.zeros_like(input_ids) if token_type_ids is None else \
            _integers("token_type_ids", token_type_ids, xp)
        padding = None
        if attention_mask is not None:
            attention_mask = _integers("attention_mask", attention_mask, xp)
            for name, ids in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
                if ids.shape != input_ids.shape:
                    raise ValueError(f"BertModel: {name} of shape {ids.shape} does not match input_ids of shape "
                                     f"{input_ids.shape}")
            padding = constant(attention_mask == 0)
        x = self.embeddings(input_ids, token_type_ids)
        return self.encoder(x, src_key_padding_mask=padding)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "BertModel":
        """The encoder of a Hugging Face BERT folder: ``config.json`` and ``model.safetensors`` (float32 or
        bfloat16 weights, read with tinydl.io.safetensors); in evaluation mode."""
        from ..io.safetensors import SafetensorsFile
        folder = Path(folder)
        for required in ("config.json", "model.safetensors"):
            if not (folder / required).is_file():
                raise FileNotFoundError(f"BertModel.from_pretrained: {folder / required} does not exist")
        model = cls(BertConfig.from_json(folder / "config.json"))
        with SafetensorsFile(folder / "model.safetensors") as weights:
            names = weights.keys()
            prefix = "bert." if any(name.startswith("bert.") for name in names) else ""
            shapes = {name[len(prefix):]: weights.shape(name) for name in names if name.startswith(prefix)}
            load_weights(model, bert_sources(model.config), shapes, lambda name: weights.tensor(prefix + name),
                         str(folder / "model.safetensors"), ignored=_unused_bert_tensors(shapes))
        return model.eval()


def bert_sources(config: BertConfig) -> dict[str, Source]:
    """tinydl parameter name -> the Hugging Face tensors it is made of."""
    sources = {
        "embeddings.word_embeddings.weight": Source(("embeddings.word_embeddings.weight",)),
        "embeddings.position_embeddings.weight": Source(("embeddings.position_embeddings.weight",)),
        "embeddings.token_type_embeddings.weight": Source(("embeddings.token_type_embeddings.weight",)),
        "embeddings.norm.weight": Source(("embeddings.LayerNorm.weight",)),
        "embeddings.norm.bias": Source(("embeddings.LayerNorm.bias",)),
    }
    for i in range(config.num_hidden_layers):
        ours, theirs = f"encoder.layers.{i}.", f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            sources[f"{ours}self_attn.in_proj_{kind}"] = Source(tuple(
                f"{theirs}attention.self.{part}.{kind}" for part in ("query", "key", "value")))
            for mine, hf in (("self_attn.out_proj", "attention.output.dense"), ("norm1", "attention.output.LayerNorm"),
                             ("linear1", "intermediate.dense"), ("linear2", "output.dense"),
                             ("norm2", "output.LayerNorm")):
                sources[f"{ours}{mine}.{kind}"] = Source((f"{theirs}{hf}.{kind}",))
    return sources


def _unused_bert_tensors(shapes: dict[str, Any]) -> list[str]:
    """Tensors of a BERT file that the encoder does not use: the position-id buffer and the pooler."""
    return [name for name in shapes if name == "embeddings.position_ids" or name.startswith("pooler.")]


def _integers(name: str, values: Any, xp: Any) -> Any:
    array = values.data if isinstance(values, Tensor) else xp.asarray(values)
    if array.dtype.kind not in "iub":
        raise TypeError(f"BertModel: {name} must hold integers, found dtype {array.dtype}")
    return array.astype(xp.int64, copy=False)


def mean_pool(hidden: Tensor, attention_mask: Any, normalize: bool = False) -> Tensor:
    """The mean of ``hidden`` (N, T, H) over the positions where ``attention_mask`` (N, T) is 1 (sentence-
    transformers' pooling): sum_t m_t h_t / max(sum_t m_t, 1e-9); with ``normalize``, then divided by its
    Euclidean norm (max(|v|, 1e-12)), as all-MiniLM-L6-v2's Normalize module does."""
    mask_array = attention_mask.data if isinstance(attention_mask, Tensor) else attention_mask
    xp = array_module_for(device_of(hidden.data))
    mask_array = xp.asarray(mask_array)
    if hidden.ndim != 3 or tuple(mask_array.shape) != tuple(hidden.shape[:2]):
        raise ValueError(f"mean_pool: expected hidden (N, T, H) and attention_mask (N, T), found "
                         f"{tuple(hidden.shape)} and {tuple(mask_array.shape)}")
    mask = constant(mask_array.astype(hidden.dtype)[:, :, None])
    counts = xp.maximum(mask_array.sum(axis=1, keepdims=True).astype(hidden.dtype), 1e-9)
    pooled = (hidden * mask).sum(1) / constant(counts)
    if not normalize:
        return pooled
    norms = F.sqrt((pooled * pooled).sum(1, keepdim=True))
    return pooled / F.maximum(norms, constant(xp.asarray(1e-12, dtype=hidden.dtype)))
