"""Without CuPy, or with CuPy but no GPU, asking for "cuda" gives an error that says what is missing (these tests
hide the CuPy in use, real or double, for their duration)."""
import sys
import types

import pytest

import tinydl
from tinydl import backend


@pytest.fixture
def no_cupy_cache():
    backend._cupy.cache_clear()
    yield
    backend._cupy.cache_clear()


def test_missing_cupy_is_named(monkeypatch, no_cupy_cache):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    assert not tinydl.is_available("cuda") and tinydl.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match=r"device 'cuda' needs CuPy.*pip install 'tinydl\[gpu\]'"):
        tinydl.zeros(2, device="cuda")
    with pytest.raises(RuntimeError, match="needs CuPy"):
        tinydl.ones(2).to("cuda")


def test_cupy_without_a_gpu_is_named(monkeypatch, no_cupy_cache):
    def no_device():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_device))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(RuntimeError, match="CuPy is installed but no usable GPU was found.*no CUDA-capable"):
        tinydl.randn(2, device="cuda:0")
