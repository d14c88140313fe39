"""Tensor construction, dtypes (no silent upcasts), devices and clear errors for bad input."""
import numpy as np
import pytest

import tinydl
import tinydl.functional as F
from tinydl.backend import Device


def test_python_data_gets_default_dtypes():
    assert tinydl.tensor([1.5, 2.0]).dtype == np.float32
    assert tinydl.tensor([1, 2]).dtype == np.int64
    assert tinydl.tensor([True]).dtype == np.bool_
    assert tinydl.tensor(np.zeros(2)).dtype == np.float64  # arrays keep theirs


def test_float32_stays_float32_with_scalars():
    x = tinydl.randn(3)
    for y in (x * 2.5, 2.5 * x, x + 1, x / 3, x ** 2, 1 - x, x * np.float64(2)):
        assert y.dtype == np.float32


def test_mixed_float_widths_are_refused_with_names():
    with pytest.raises(TypeError, match=r"add: .*float32 and float64"):
        tinydl.randn(2) + tinydl.randn(2, dtype=tinydl.float64)


def test_integer_tensor_with_float_tensor_takes_the_float_dtype():
    assert (tinydl.tensor([1, 2]) * tinydl.randn(2)).dtype == np.float32
    assert (tinydl.tensor([1, 2]) * 0.5).dtype == np.float32


@pytest.mark.parametrize("op, shapes, pattern", [
    (F.add, [(2, 3), (4,)], r"add: .*\(2, 3\).*\(4,\)"),
    (F.matmul, [(2, 3), (4, 5)], r"matmul: shapes \(2, 3\) and \(4, 5\)"),
    (lambda a, b: F.cat([a, b], 1), [(2, 3), (3, 3)], r"cat: .*\(2, 3\).*\(3, 3\)"),
    (lambda a, b: F.stack([a, b]), [(2, 3), (3, 3)], r"stack: .*\(2, 3\).*\(3, 3\)"),
])
def test_shape_mismatch_names_op_and_shapes(op, shapes, pattern):
    a, b = (tinydl.randn(*s) for s in shapes)
    with pytest.raises(ValueError, match=pattern):
        op(a, b)


def test_reshape_error_names_shapes():
    with pytest.raises(ValueError, match=r"reshape: shape \(4, 2\) is invalid for input of shape \(2, 3\)"):
        tinydl.randn(2, 3).reshape(4, 2)


def test_dim_out_of_range_names_op():
    with pytest.raises(IndexError, match="sum: dimension 3 is out of range"):
        tinydl.randn(2, 3).sum(3)


class FakeGpuArray:
    """Stands in for a CuPy array on a machine without a GPU: all the device check looks at."""

    class _Device:
        id = 0

    device = _Device()
    shape, dtype = (3,), np.dtype(np.float32)


FakeGpuArray.__module__ = "cupy._core.core"


def test_mixed_devices_raise_naming_both():
    cpu = tinydl.randn(3)
    gpu = tinydl.Tensor._from_array(FakeGpuArray())
    assert gpu.device == Device("cuda:0")
    with pytest.raises(RuntimeError, match=r"add: .*input 0 on cpu, input 1 on cuda:0"):
        F.add(cpu, gpu)


def test_device_parsing():
    assert tinydl.device("cuda") == Device("cuda:0") and str(tinydl.device("cuda:1")) == "cuda:1"
    assert tinydl.device("cpu") == "cpu"
    with pytest.raises(ValueError, match="unknown device type"):
        tinydl.device("tpu")
    with pytest.raises(ValueError, match="malformed"):
        tinydl.device("cuda:x")


@pytest.mark.skipif(tinydl.is_available("cuda"), reason="checks the message shown when no GPU is present")
def test_cuda_without_gpu_says_what_is_missing():
    with pytest.raises(RuntimeError, match="CuPy|GPU"):
        tinydl.randn(2).cuda()


def test_to_cpu_numpy_item_detach():
    x = tinydl.tensor([[1.0, 2.0]], requires_grad=True)
    assert x.to("cpu") is x
    assert x.detach().numpy().tolist() == [[1.0, 2.0]]
    assert (x.sum()).item() == 3.0
    with pytest.raises(ValueError, match="one-element"):
        x.item()


def test_dtype_conversion_is_differentiable():
    x = tinydl.randn(3, requires_grad=True)
    y = x.double() * 2
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32 and np.all(x.grad.numpy() == 2)


def test_setitem_refused_on_graph_tensors():
    x = tinydl.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        x[0] = 1.0
    y = tinydl.zeros(3)
    y[1] = 5.0
    assert y.tolist() == [0.0, 5.0, 0.0]


def test_creation_functions_and_seed():
    tinydl.manual_seed(3)
    a = tinydl.randn(4)
    tinydl.manual_seed(3)
    b = tinydl.randn(4)
    assert np.array_equal(a.numpy(), b.numpy())
    assert tinydl.zeros(2, 3).shape == (2, 3) and tinydl.ones((2,)).dtype == np.float32
    assert tinydl.arange(5).dtype == np.int64 and tinydl.arange(0, 1, 0.25).shape == (4,)
    assert tinydl.full((2,), 7).dtype == np.int64
    assert tinydl.zeros_like(a).shape == (4,) and tinydl.rand_like(a).dtype == np.float32
    r = tinydl.rand(1000).numpy()
    assert 0 <= r.min() and r.max() < 1


def test_max_with_dim_returns_values_and_indices():
    x = tinydl.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    values, indices = x.max(1)
    assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0]
