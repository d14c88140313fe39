"""Shared by the GPU tests: the skip marker, what tells the double from real CuPy, and the no-sync guard."""
import warnings

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


class no_synchronisation:
    """Inside: any device-to-host read (a synchronisation) raises cupyx.DeviceSynchronized (CuPy's own detector,
    which the double drives); on the double, the transfer counter must also stay at zero."""

    def __enter__(self):
        import cupyx
        warnings.filterwarnings("ignore", "cupyx.allow_synchronize", category=DeprecationWarning)
        self.guard = cupyx.allow_synchronize(False)
        self.guard.__enter__()
        if on_double():
            import cupy
            cupy._double.counters.reset()
        return self

    def __exit__(self, *exc):
        self.guard.__exit__(*exc)
        if on_double() and exc[0] is None:
            import cupy
            assert cupy._double.counters.device_to_host == 0
