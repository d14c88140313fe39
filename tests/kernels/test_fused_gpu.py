"""Each fused CUDA kernel against its plain path, on a real GPU (skipped elsewhere, including on the CuPy double,
which cannot run user kernels): forward and backward on random inputs in float32 and float64, through the public
ops (:mod:`tinydl.testing.fused`); and each fused kernel at least as fast as the plain path at the benchmark
shapes, its speed-up recorded (``record_property`` and the printed line; ``benchmarks/gpu_check.py`` tabulates
them)."""
import importlib
import pathlib

import numpy as np
import pytest

from tinydl.backend import fused_kernels_enabled
from tinydl.testing import assert_close
from tinydl.testing.fused import CASES, run_both, time_both


def real_gpu() -> bool:
    """CuPy installed from a package (not a stand-in) and at least one GPU."""
    try:
        cupy = importlib.import_module("cupy")
        importlib.import_module("cupy_backends")
        installed = any(part in ("site-packages", "dist-packages") for part in pathlib.Path(cupy.__file__).parts)
        return installed and cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not real_gpu(), reason="needs CuPy and an NVIDIA GPU"),
              pytest.mark.skipif(not fused_kernels_enabled(), reason="fused kernels switched off "
                                                                     "(TINYDL_FUSED_KERNELS=0)")]
TOLERANCES = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-11, atol=1e-12)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_fused_kernel_matches_plain_path(case, dtype):
    fused, plain = run_both(case, "cuda", dtype)
    assert len(fused) == len(plain)
    for position, (a, b) in enumerate(zip(fused, plain)):
        assert a.shape == b.shape and a.dtype == b.dtype, (case.name, position)
        assert_close(a, b, **TOLERANCES[dtype], name=f"{case.name} result {position}")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_fused_kernel_is_at_least_as_fast_as_plain_path(case, record_property):
    fused_ms, plain_ms = time_both(case, "cuda")
    speedup = plain_ms / fused_ms
    record_property("speedup", round(speedup, 3))
    print(f"{case.name}: fused {fused_ms:.3f} ms, plain {plain_ms:.3f} ms, speed-up {speedup:.2f}x")
    assert speedup >= 1.0, f"{case.name}: fused {fused_ms:.3f} ms is slower than plain {plain_ms:.3f} ms"
