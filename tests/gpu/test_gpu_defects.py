"""Defects of the CuPy path found by reading tinydl against CuPy 14's rules; each test failed before its fix.

* attention's row maximum used ``xp.fmax.reduce``: CuPy implements ``ufunc.reduce`` for add and multiply only;
* ``randperm(device="cuda")`` called ``Generator.permutation``, which CuPy's Generator lacks;
* the engine decided whether a leaf gradient needs its own copy by ``flags.writeable``, which CuPy arrays lack,
  and CuPy's broadcast views are writable: ``x.grad`` could be a stride-0 view or shared between leaves;
* ``t[1] = numpy_array`` (or a list) on a GPU tensor: CuPy refuses host data in index assignment;
* creation functions with ``device="cuda:1"`` allocated on GPU 0, and one generator served every GPU.
"""
import numpy as np
import pytest

import tinydl
import tinydl.functional as F
from tinydl import nn

from ._gpu import requires_gpu, two_gpus

pytestmark = requires_gpu


def test_attention_runs_on_the_gpu_and_matches_the_cpu():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 3, 4)) for _ in range(3))
    expected = F.scaled_dot_product_attention(*(tinydl.tensor(a) for a in (q, k, v)), is_causal=True)
    got = F.scaled_dot_product_attention(*(tinydl.tensor(a, device="cuda") for a in (q, k, v)), is_causal=True)
    np.testing.assert_allclose(got.cpu().numpy(), expected.numpy(), rtol=1e-12, atol=1e-12)


def test_multihead_attention_module_on_the_gpu():
    tinydl.manual_seed(0)
    layer = nn.MultiheadAttention(8, 2, batch_first=True).to("cuda")
    x = tinydl.randn(2, 5, 8, device="cuda")
    output, _ = layer(x, x, x)
    assert output.device == "cuda:0" and output.shape == (2, 5, 8)


def test_randperm_on_the_gpu_is_a_permutation_and_seeded():
    tinydl.manual_seed(1)
    first = tinydl.randperm(50, device="cuda")
    tinydl.manual_seed(1)
    second = tinydl.randperm(50, device="cuda")
    assert first.device == "cuda:0" and first.dtype == np.int64
    assert sorted(first.tolist()) == list(range(50))
    assert first.tolist() == second.tolist()


def test_leaf_gradient_of_a_broadcast_is_its_own_memory_on_the_gpu():
    x = tinydl.zeros(4, device="cuda", requires_grad=True)
    x.sum().backward()
    grad = x.grad.data
    assert all(stride != 0 for stride in grad.strides)
    x.grad.data[0] = 5.0
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [5.0, 1.0, 1.0, 1.0])


def test_two_leaves_never_share_one_gradient_buffer_on_the_gpu():
    a = tinydl.zeros(3, device="cuda", requires_grad=True)
    b = tinydl.zeros(3, device="cuda", requires_grad=True)
    (a + b).sum().backward()
    a.grad.data[0] = 7.0
    np.testing.assert_array_equal(b.grad.cpu().numpy(), [1.0, 1.0, 1.0])


@pytest.mark.parametrize("value", [np.array([1.0, 2.0, 3.0], dtype=np.float32), [1.0, 2.0, 3.0]],
                         ids=["numpy", "list"])
def test_assigning_host_data_into_a_gpu_tensor(value):
    t = tinydl.zeros(2, 3, device="cuda")
    t[1] = value
    np.testing.assert_array_equal(t.cpu().numpy(), [[0, 0, 0], [1, 2, 3]])
    assert t.device == "cuda:0"


def test_assigning_a_tensor_from_another_device_is_refused_by_name():
    t = tinydl.zeros(2, 3, device="cuda")
    with pytest.raises(RuntimeError, match=r"setitem.*cpu.*cuda:0"):
        t[1] = tinydl.ones(3)


@pytest.mark.skipif("not two_gpus()")
@pytest.mark.parametrize("make", [
    lambda d: tinydl.zeros(3, device=d), lambda d: tinydl.ones(3, device=d), lambda d: tinydl.empty(3, device=d),
    lambda d: tinydl.full((3,), 2.0, device=d), lambda d: tinydl.arange(3, device=d),
    lambda d: tinydl.linspace(0, 1, 3, device=d), lambda d: tinydl.eye(3, device=d),
    lambda d: tinydl.randn(3, device=d), lambda d: tinydl.rand(3, device=d),
    lambda d: tinydl.randint(0, 5, (3,), device=d), lambda d: tinydl.randperm(3, device=d),
    lambda d: tinydl.tensor([1.0, 2.0], device=d), lambda d: tinydl.tensor(np.ones(2), device=d),
    lambda d: tinydl.zeros_like(tinydl.ones(2), device=d),
], ids=["zeros", "ones", "empty", "full", "arange", "linspace", "eye", "randn", "rand", "randint", "randperm",
        "tensor-list", "tensor-array", "zeros_like"])
def test_creation_on_the_second_gpu_allocates_there(make):
    t = make("cuda:1")
    assert t.device == "cuda:1"
    assert t.data.device.id == 1


@pytest.mark.skipif("not two_gpus()")
def test_each_gpu_has_its_own_generator_seeded_by_manual_seed():
    assert tinydl.default_generator("cuda:0") is not tinydl.default_generator("cuda:1")
    tinydl.manual_seed(5)
    on_first = tinydl.randn(4, device="cuda:0").tolist()
    on_second = tinydl.randn(4, device="cuda:1").tolist()
    tinydl.manual_seed(5)
    assert tinydl.randn(4, device="cuda:1").tolist() == on_second
    assert tinydl.randn(4, device="cuda:0").tolist() == on_first


@pytest.mark.skipif("not two_gpus()")
def test_a_training_step_on_the_second_gpu_stays_there():
    tinydl.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).to("cuda:1")
    opt = tinydl.optim.Adam(model.parameters(), lr=0.1)
    x, y = tinydl.randn(5, 4, device="cuda:1"), tinydl.randint(0, 2, (5,), device="cuda:1")
    loss = nn.CrossEntropyLoss()(model(x), y)
    loss.backward()
    opt.step()
    assert loss.device == "cuda:1"
    assert all(p.device == "cuda:1" and p.grad.device == "cuda:1" for p in model.parameters())
    assert all(p.data.device.id == 1 for p in model.parameters())
