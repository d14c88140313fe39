"""Weight formats of other ecosystems, read (and for safetensors written) with NumPy only.

- :mod:`tinydl.io.safetensors`: Hugging Face's safetensors, read and write; a Module's state dict to and from it.
- :mod:`tinydl.io.gguf`: llama.cpp's GGUF, read; metadata and tensors, quantised blocks dequantised to float32.
"""
from . import gguf, safetensors

__all__ = ["gguf", "safetensors"]
