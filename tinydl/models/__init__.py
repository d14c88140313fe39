"""Real architectures built from tinydl's layers, loading real weight files: ``BertModel`` (Hugging Face
folders, safetensors) and ``LlamaModel`` (GGUF files); see docs/pretrained.md."""
from ._weights import WeightsMismatchError
from .bert import BertConfig, BertModel, mean_pool
from .llama import LlamaConfig, LlamaModel, undo_rotary_permutation
from .sampling import sample_next_token

__all__ = ["BertConfig", "BertModel", "mean_pool", "LlamaConfig", "LlamaModel", "undo_rotary_permutation",
           "sample_next_token", "WeightsMismatchError"]
