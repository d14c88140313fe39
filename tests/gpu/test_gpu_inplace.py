"""In-place methods (tinydl.inplace) and version counters on the GPU, the second GPU included: each method runs on
the GPU that holds its tensor, and the values and gradients equal the CPU's."""
import numpy as np
import pytest

import tinydl

from ._gpu import requires_gpu, two_gpus

pytestmark = requires_gpu


def _every_inplace_method(device):
    """Values after each in-place method outside a graph, and the gradient through in-place ops in a graph."""
    x = tinydl.zeros(3, device=device, dtype=np.float64)
    x.add_(1.0)
    x.mul_(2.0)
    x[0] = 5.0
    x[1] = np.array(7.0)
    x[1:] = [7.0, -3.0]
    x.clamp_(0, 6)
    values = x.cpu().numpy().copy()
    w = tinydl.tensor(np.arange(3.0), device=device, requires_grad=True)
    y = w * 2
    y.mul_(3.0)
    y[0] = 1.0
    y.div_(2.0)
    (y * y).sum().backward()
    return values, w.grad.cpu().numpy()


@pytest.mark.parametrize("device", ["cuda", pytest.param("cuda:1", marks=pytest.mark.skipif("not two_gpus()"))])
def test_inplace_methods_on_the_gpu_match_the_cpu(device):
    for got, expected in zip(_every_inplace_method(device), _every_inplace_method("cpu")):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("device", ["cuda", pytest.param("cuda:1", marks=pytest.mark.skipif("not two_gpus()"))])
def test_a_saved_tensor_changed_in_place_on_the_gpu_is_caught(device):
    w = tinydl.ones(3, device=device, requires_grad=True)
    x = tinydl.ones(3, device=device)
    loss = (w * x).sum()
    x.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an in-place operation|version"):
        loss.backward()


def test_assigning_a_tensor_from_another_device_names_both():
    target = tinydl.zeros(3, device="cuda")
    with pytest.raises(RuntimeError, match="cpu.*cuda:0"):
        target[0] = tinydl.ones(())
