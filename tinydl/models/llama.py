"""Llama (Touvron et al., 2023), the architecture of SmolLM2, built from tinydl's layers and loaded from a GGUF
file (llama.cpp's format, read and dequantised by tinydl.io.gguf).

For token ids t_1..t_T, with h the hidden width, H query heads and G key/value heads of size D = h / H:

    x = embed_tokens[t]
    repeat num_layers times:
        a = rms_norm(x) ;  q, k, v = a W_q^T, a W_k^T, a W_v^T      (H, G and G heads of size D)
        q, k = apply_rotary(q), apply_rotary(k)                        (position p of each token, base theta)
        x = x + o_proj( attention(q, k, v) )   causal; query head i reads key/value head i // (H / G)
        x = x + SwiGLU( rms_norm(x) )
    logits = rms_norm(x) embed_tokens^T                               (output and input embeddings tied)

Rotary convention: tinydl rotates feature pairs (i, i + D/2) of each head ("rotate_half", Hugging Face's layout).
llama.cpp's converter reorders the rows of W_q and W_k per head so that its kernels can rotate neighbouring
features (2i, 2i + 1) instead; :func:`undo_rotary_permutation` restores the original rows when loading, so the
loaded weights are the Hugging Face ones and every other tensor is used as stored.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import numpy

from .. import functional as F
from ..autograd import no_grad
from ..backend import array_module_for, device_of, to_device
from ..nn import Embedding, KVCache, Linear, Module, ModuleList, RMSNorm, SwiGLU, rotary_cos_sin
from ..tensor import Tensor
from ._weights import Source, load_weights
from .sampling import sample_next_token

__all__ = ["LlamaConfig", "LlamaModel", "undo_rotary_permutation"]


@dataclasses.dataclass
class LlamaConfig:
    """The sizes of a Llama model (SmolLM2-135M's by default)."""

    vocab_size: int = 49152
    hidden_size: int = 576
    intermediate_size: int = 1536
    num_layers: int = 30
    num_heads: int = 9
    num_kv_heads: int = 3
    rms_norm_eps: float = 1e-5
    rope_theta: float = 100000.0
    max_positions: int = 8192
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @classmethod
    def from_gguf_metadata(cls, metadata: dict[str, Any], source: str = "GGUF file") -> "LlamaConfig":
        """The config from a GGUF file's metadata (``llama.block_count``, ``llama.embedding_length``, ...)."""
        architecture = metadata.get("general.architecture")
        if architecture != "llama":
            raise ValueError(f"{source}: general.architecture is {architecture!r}; LlamaModel reads 'llama' files")

        def need(key: str) -> Any:
            if f"llama.{key}" not in metadata:
                raise ValueError(f"{source}: the metadata lacks 'llama.{key}', which LlamaModel needs")
            return metadata[f"llama.{key}"]

        tokens = metadata.get("tokenizer.ggml.tokens")
        vocab_size = metadata.get("llama.vocab_size", len(tokens) if tokens is not None else None)
        if vocab_size is None:
            raise ValueError(f"{source}: neither 'llama.vocab_size' nor 'tokenizer.ggml.tokens' gives the vocabulary")
        return cls(vocab_size=int(vocab_size), hidden_size=int(need("embedding_length")),
                   intermediate_size=int(need("feed_forward_length")), num_layers=int(need("block_count")),
                   num_heads=int(need("attention.head_count")), num_kv_heads=int(need("attention.head_count_kv")),
                   rms_norm_eps=float(need("attention.layer_norm_rms_epsilon")),
                   rope_theta=float(metadata.get("llama.rope.freq_base", 10000.0)),
                   max_positions=int(need("context_length")),
                   bos_token_id=metadata.get("tokenizer.ggml.bos_token_id"),
                   eos_token_id=metadata.get("tokenizer.ggml.eos_token_id"))


class LlamaAttention(Module):
    """Causal grouped-query self-attention with rotary positions. ``qkv_proj`` is W_q, W_k and W_v stacked (one
    matrix product for the three projections), ``o_proj`` the output projection; no biases."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = config.num_heads, config.num_kv_heads, config.head_dim
        width, kv_width = config.num_heads * config.head_dim, config.num_kv_heads * config.head_dim
        self.sections = (width, kv_width, kv_width)
        self.qkv_proj = Linear(config.hidden_size, sum(self.sections), bias=False)
        self.o_proj = Linear(width, config.hidden_size, bias=False)

    def _heads(self, x: Tensor, heads: int) -> Tensor:
        """(N, T, heads * D) -> (N, heads, T, D)."""
        return x.reshape(x.shape[0], x.shape[1], heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, cache: KVCache | None, layer: int) -> Tensor:
        batch, length = x.shape[0], x.shape[1]
        q, k, v = F.split(self.qkv_proj(x), self.sections, -1)
        q = F.apply_rotary(self._heads(q, self.num_heads), cos, sin)
        k = F.apply_rotary(self._heads(k, self.num_kv_heads), cos, sin)
        v = self._heads(v, self.num_kv_heads)
        if cache is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:
            mask = cache.causal_mask(length)
            k, v = cache.update(layer, k, v)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else Tensor(mask),
                                                 enable_gqa=True)
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim))


class LlamaBlock(Module):
    """x + attention(rms_norm(x)), then + SwiGLU(rms_norm(.)) (pre-norm residual blocks)."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.attention_norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.attention = LlamaAttention(config)
        self.ffn_norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.feed_forward = SwiGLU(config.hidden_size, config.intermediate_size)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, cache: KVCache | None, layer: int) -> Tensor:
        x = x + self.attention(self.attention_norm(x), cos, sin, cache, layer)
        return x + self.feed_forward(self.ffn_norm(x))


class LlamaModel(Module):
    """A Llama causal language model: ``model(input_ids)`` (N, T) -> logits (N, T, vocab_size).

    ``model(input_ids, cache=cache)`` continues from the positions stored in a :class:`tinydl.nn.KVCache`
    (``cache.length`` of them) and stores the new ones; ``last_only=True`` computes the logits of the last
    position only (what generation needs). :meth:`generate` decodes with the cache.
    """

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = Embedding(config.vocab_size, config.hidden_size)
        self.layers = ModuleList([LlamaBlock(config) for _ in range(config.num_layers)])
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, input_ids: Any, cache: KVCache | None = None, last_only: bool = False) -> Tensor:
        weight = self.embed_tokens.weight
        xp = array_module_for(device_of(weight.data))
        ids = input_ids.data if isinstance(input_ids, Tensor) else xp.asarray(input_ids)
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise ValueError(f"LlamaModel: expected integer input_ids of shape (batch, length), found shape "
                             f"{tuple(ids.shape)} and dtype {ids.dtype}")
        start = 0 if cache is None else cache.length
        end = start + ids.shape[1]
        if end > self.config.max_positions:
            raise ValueError(f"LlamaModel: positions up to {end} exceed the model's {self.config.max_positions} "
                             f"positions; shorten the input")
        cos, sin = rotary_cos_sin(xp.arange(start, end), self.config.head_dim, self.config.rope_theta,
                                  dtype=weight.dtype, device=device_of(weight.data))
        x = self.embed_tokens(ids)
        for index, layer in enumerate(self.layers):
            x = layer(x, cos, sin, cache, index)
        if cache is not None:
            cache.advance(ids.shape[1])
        if last_only:
            x = x[:, -1:]
        return F.linear(self.norm(x), weight)   # tied output embedding

    def new_cache(self, batch: int, max_length: int) -> KVCache:
        """An empty key/value cache for ``batch`` sequences of up to ``max_length`` positions."""
        config, weight = self.config, self.embed_tokens.weight
        return KVCache(config.num_layers, batch, config.num_kv_heads, config.head_dim, max_length,
                       dtype=weight.dtype, device=device_of(weight.data))

    def generate(self, input_ids: Any, max_new_tokens: int, temperature: float = 0.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None, eos_token_id: int | None = None,
                 callback: Callable[[numpy.ndarray], Any] | None = None) -> numpy.ndarray:
        """``input_ids`` (N, T) (or (T,)) followed by up to ``max_new_tokens`` generated ids, as a NumPy int64
        array of the same rank. Temperature 0 is greedy; otherwise tokens are drawn (optionally restricted to
        the ``top_k`` most likely and/or the ``top_p`` nucleus) with a generator seeded by ``seed``. The prompt
        is encoded in one pass; each new token then costs one position, through a key/value cache. With
        ``eos_token_id``, generation stops once every row has produced it (later tokens of a finished row are
        that id). ``callback(ids)`` receives each step's new ids (N,) as they come (for streaming)."""
        prompt = numpy.asarray(to_device(input_ids.data, "cpu") if isinstance(input_ids, Tensor) else input_ids)
        single = prompt.ndim == 1
        prompt = prompt.reshape(1, -1) if single else prompt
        if prompt.ndim != 2 or prompt.shape[1] == 0:
            raise ValueError(f"LlamaModel.generate: expected input_ids of shape (batch, length) with length >= 1, "
                             f"found {prompt.shape}")
        total = prompt.shape[1] + max_new_tokens
        if total > self.config.max_positions:
            raise ValueError(f"LlamaModel.generate: {prompt.shape[1]} prompt tokens + {max_new_tokens} new ones "
                             f"exceed the model's {self.config.max_positions} positions")
        rng = numpy.random.default_rng(seed)
        cache = self.new_cache(prompt.shape[0], total)
        generated = []
        finished = numpy.zeros(prompt.shape[0], dtype=bool)
        with no_grad():
            step_input = prompt
            for _ in range(max_new_tokens):
                logits = to_device(self(step_input, cache=cache, last_only=True).data[:, -1], "cpu")
                next_ids = sample_next_token(logits, temperature, top_k, top_p, rng)
                if eos_token_id is not None:
                    next_ids[finished] = eos_token_id
                    finished |= next_ids == eos_token_id
                generated.append(next_ids)
                if callback is not None:
                    callback(next_ids)
                if finished.all():
                    break
                step_input = next_ids[:, None]
        new = numpy.stack(generated, axis=1) if generated else numpy.zeros((prompt.shape[0], 0), numpy.int64)
        result = numpy.concatenate([prompt.astype(numpy.int64), new], axis=1)
        return result[0] if single else result

    @classmethod
    def from_gguf(cls, path: str | os.PathLike) -> "LlamaModel":
        """A Llama model from a GGUF file (config from its metadata, weights dequantised to float32); in
        evaluation mode."""
        from ..io.gguf import GGUFFile
        gguf = GGUFFile(path)
        source = f"GGUF file '{path}'"
        model = cls(LlamaConfig.from_gguf_metadata(gguf.metadata, source))
        shapes = {name: info.shape for name, info in gguf.tensors.items()}
        load_weights(model, llama_sources(model.config), shapes, gguf.tensor, source)
        return model.eval()


def undo_rotary_permutation(weight: Any, heads: int) -> Any:
    """The rows of a query or key projection as Hugging Face stores them, from llama.cpp's reordering.

    Per head of D rows, Hugging Face's order is [r_0 .. r_{D/2-1}, r_{D/2} .. r_{D-1}] (rotary pairs (i, i + D/2));
    llama.cpp's converter interleaves them to [r_0, r_{D/2}, r_1, r_{D/2+1}, ...] (pairs (2i, 2i + 1)), i.e. views
    each head as (2, D/2) and transposes it. This views each head as (D/2, 2) and transposes back.
    """
    rows = weight.shape[0]
    return weight.reshape(heads, rows // heads // 2, 2, -1).swapaxes(1, 2).reshape(weight.shape)


def llama_sources(config: LlamaConfig) -> dict[str, Source]:
    """tinydl parameter name -> the GGUF tensors it comes from."""
    sources = {"embed_tokens.weight": Source(("token_embd.weight",)),
               "norm.weight": Source(("output_norm.weight",))}
    width, kv_width = config.num_heads * config.head_dim, config.num_kv_heads * config.head_dim

    def stack_qkv(arrays: list[Any]) -> Any:
        q, k, v = arrays
        return numpy.concatenate([undo_rotary_permutation(q, config.num_heads),
                                  undo_rotary_permutation(k, config.num_kv_heads), v], axis=0)

    for i in range(config.num_layers):
        ours, theirs = f"layers.{i}.", f"blk.{i}."
        sources.update({
            f"{ours}attention_norm.weight": Source((f"{theirs}attn_norm.weight",)),
            f"{ours}attention.qkv_proj.weight": Source(
                tuple(f"{theirs}attn_{part}.weight" for part in "qkv"), (width, kv_width, kv_width), stack_qkv),
            f"{ours}attention.o_proj.weight": Source((f"{theirs}attn_output.weight",)),
            f"{ours}ffn_norm.weight": Source((f"{theirs}ffn_norm.weight",)),
            f"{ours}feed_forward.gate_up_proj.weight": Source((f"{theirs}ffn_gate.weight", f"{theirs}ffn_up.weight")),
            f"{ours}feed_forward.down_proj.weight": Source((f"{theirs}ffn_down.weight",)),
        })
    return sources
