"""The fusion switch, on the CPU: ``TINYDL_FUSED_KERNELS`` sets it at import, ``set_fused_kernels`` changes it
(also as a context manager), and ``can_fuse`` (the one test every fused path makes) follows it, refusing NumPy
arrays, float16 and mixed float dtypes."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import tinydl
from tinydl.backend import fused_kernels_enabled, set_fused_kernels
from tinydl.kernels.cuda.build import can_fuse

ROOT = pathlib.Path(__file__).parents[2]


def enabled_in_fresh_process(value):
    environment = {k: v for k, v in os.environ.items() if k != "TINYDL_FUSED_KERNELS"}
    if value is not None:
        environment["TINYDL_FUSED_KERNELS"] = value
    code = "import tinydl.backend as b; print(b.fused_kernels_enabled())"
    output = subprocess.run([sys.executable, "-c", code], env=environment, cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    return output.strip() == "True"


@pytest.mark.parametrize("value, expected", [(None, True), ("1", True), ("0", False), ("off", False),
                                             ("false", False)])
def test_environment_variable_sets_the_switch(value, expected):
    assert enabled_in_fresh_process(value) is expected


def test_set_fused_kernels_and_context_manager():
    before = fused_kernels_enabled()
    try:
        set_fused_kernels(False)
        assert not fused_kernels_enabled()
        with set_fused_kernels(True):
            assert fused_kernels_enabled()
            with set_fused_kernels(False):
                assert not fused_kernels_enabled()
            assert fused_kernels_enabled()
        assert not fused_kernels_enabled()
    finally:
        set_fused_kernels(before)
    assert fused_kernels_enabled() is before


def test_set_fused_kernels_refuses_non_booleans():
    with pytest.raises(TypeError, match="set_fused_kernels"):
        set_fused_kernels(0)


class FakeDeviceArray:
    """Stands for a CuPy array in ``can_fuse``'s eyes: its class's module starts with "cupy"."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


FakeDeviceArray.__module__ = "cupy._core.core"


def test_can_fuse_follows_the_switch_and_the_dtypes():
    with set_fused_kernels(True):
        assert can_fuse(FakeDeviceArray("float32"), FakeDeviceArray("float32"))
        assert can_fuse(FakeDeviceArray("float64"), FakeDeviceArray("int64"), None)
        assert not can_fuse(FakeDeviceArray("float16"))                       # no float16 kernels: plain path
        assert not can_fuse(FakeDeviceArray("float32"), FakeDeviceArray("float64"))
        assert not can_fuse(np.zeros(3, np.float32))                         # NumPy: always the plain path
        assert not can_fuse(FakeDeviceArray("float32"), np.zeros(3, np.float32))
    with set_fused_kernels(False):
        assert not can_fuse(FakeDeviceArray("float32"))


def test_cpu_results_do_not_depend_on_the_switch():
    """On NumPy the plain path runs either way: a small training step gives identical numbers."""
    def step():
        tinydl.manual_seed(0)
        layer = tinydl.nn.Linear(6, 5)
        optimizer = tinydl.optim.Adam(layer.parameters())
        x = tinydl.randn(4, 6)
        logits = tinydl.functional.layer_norm(tinydl.functional.gelu(layer(x)), 5)
        loss = tinydl.functional.cross_entropy(logits, tinydl.tensor([0, 1, 2, 3]))
        loss.backward()
        optimizer.step()
        return loss.item(), layer.weight.detach().numpy().copy()

    with set_fused_kernels(True):
        loss_on, weight_on = step()
    with set_fused_kernels(False):
        loss_off, weight_off = step()
    assert loss_on == loss_off
    np.testing.assert_array_equal(weight_on, weight_off)
