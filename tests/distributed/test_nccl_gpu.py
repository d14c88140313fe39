"""CuPy arrays go through NCCL (``cupy.cuda.nccl``): the unique id handed out over MPI, the communicator built on
the arrays' GPU, and all_reduce, broadcast, all_gather and DDP's buckets on GPU memory. In a world of one (one GPU:
NCCL refuses two ranks on one device) the code path is the same as with many ranks; the results are checked
against the CPU. Runs where CuPy, NCCL and a GPU are present, and on the CuPy double (tests/cupy_double), whose
``cupy.cuda.nccl`` is a group of one rank that copies with the counts and datatypes it is given: there a count or
datatype code that does not match the arrays shows up as wrong values."""
from __future__ import annotations

import numpy as np
import pytest

import tinydl
import tinydl.distributed as dist
import tinydl.functional as F
from tinydl import nn

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not tinydl.is_available("cuda"), reason="needs CuPy and an NVIDIA GPU")]


@pytest.fixture
def nccl():
    from tinydl.distributed.nccl import nccl_available
    if not nccl_available():
        pytest.skip("CuPy cannot load NCCL (pip install nvidia-nccl-cu12)")


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int64", "int32", "uint8"])
def test_collectives_on_gpu_arrays_run_through_nccl(nccl, dtype):
    import cupy
    from tinydl.distributed import nccl as nccl_module
    x = cupy.arange(12, dtype=dtype).reshape(3, 4)
    total = dist.all_reduce(x)
    assert isinstance(total, cupy.ndarray) and total is not x
    assert cupy.cuda.Device().id in nccl_module._groups  # the communicator exists: NCCL carried the call
    np.testing.assert_array_equal(total.get(), x.get() * dist.world_size())
    np.testing.assert_array_equal(dist.broadcast(x).get(), x.get())
    gathered = dist.all_gather(tinydl.tensor(x))
    assert gathered[0].device == "cuda:0"
    np.testing.assert_array_equal(gathered[0].data.get(), x.get())


def test_ddp_buckets_on_the_gpu_keep_the_gradients_of_the_cpu(nccl):
    tinydl.manual_seed(0)
    cpu = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    gpu = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    gpu.load_state_dict(cpu.state_dict())
    ddp = dist.DistributedDataParallel(gpu.to("cuda"), bucket_mb=1e-6)
    x, y = np.random.default_rng(0).standard_normal((4, 5)), np.array([0, 2, 1, 0])
    F.cross_entropy(cpu(tinydl.tensor(x)), tinydl.tensor(y)).backward()
    F.cross_entropy(ddp(tinydl.tensor(x, device="cuda")), tinydl.tensor(y, device="cuda")).backward()
    assert len(ddp._buckets) == 4  # the reduction ran, one bucket per parameter
    for mine, reference in zip(gpu.parameters(), cpu.parameters()):
        np.testing.assert_allclose(mine.grad.data.get(), reference.grad.data, rtol=1e-12, atol=1e-14)


def test_buckets_and_collectives_work_on_the_gpu_of_their_arrays(nccl):
    import cupy
    if cupy.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two GPUs")
    ddp = dist.DistributedDataParallel(nn.Linear(3, 2).to("cuda:0"))
    x = tinydl.tensor(np.ones((2, 3), dtype=np.float32))
    ddp(x.to("cuda:0")).sum().backward()
    assert ddp._buckets[0].buffer.device.id == 0
    ddp.zero_grad()
    ddp.to("cuda:1")
    ddp(x.to("cuda:1")).sum().backward()
    assert ddp._buckets[0].buffer.device.id == 1
    np.testing.assert_array_equal(ddp.module.weight.grad.data.get(), np.full((2, 3), 2.0, dtype=np.float32))
    with cupy.cuda.Device(1):
        on_second = cupy.arange(4.0)
    for result in (dist.all_reduce(on_second, op="mean"), dist.broadcast(on_second), dist.all_gather(on_second)[0]):
        assert result.device.id == 1  # made on the input's GPU, while GPU 0 is the current one
        np.testing.assert_array_equal(result.get(), np.arange(4.0))
