"""Shared by the GPU tests: the skip marker and what tells the double from real CuPy."""
import pytest

import tinydl

requires_gpu = [pytest.mark.gpu, pytest.mark.skipif(not tinydl.is_available("cuda"),
                                                     reason="needs CuPy and a GPU (or the CuPy double)")]


def on_double() -> bool:
    """True when "cuda" is the CuPy double of tests/cupy_double (it counts transfers and has two devices)."""
    import cupy
    return "double" in cupy.__version__


def two_gpus() -> bool:
    import cupy
    return cupy.cuda.runtime.getDeviceCount() >= 2
