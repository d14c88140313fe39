"""A script run without mpiexec is a world of one: the API works and changes nothing; bad input is refused with
errors that say what to do; without mpi4py, asking for MPI names the pip command."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinydl
import tinydl.distributed as dist
import tinydl.functional as F
from tinydl import nn, optim

ROOT = Path(__file__).resolve().parents[2]


def test_the_world_of_one():
    assert (dist.rank(), dist.world_size(), dist.is_main()) == (0, 1, True)
    dist.barrier()
    x = np.arange(6.0).reshape(2, 3)
    for reduced in (dist.all_reduce(x), dist.all_reduce(x, op="mean"), dist.broadcast(x)):
        np.testing.assert_array_equal(reduced, x)
        assert reduced is not x
    gathered = dist.all_gather(tinydl.tensor(x))
    assert len(gathered) == 1 and isinstance(gathered[0], tinydl.Tensor)
    np.testing.assert_array_equal(gathered[0].data, x)
    assert dist.all_reduce(np.array([1, 2]), op="mean").dtype.kind == "f"


def test_ddp_in_a_world_of_one_trains_exactly_like_the_model_itself(tmp_path):
    tinydl.manual_seed(0)
    plain = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    wrapped = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    wrapped.load_state_dict(plain.state_dict())
    ddp = dist.DistributedDataParallel(wrapped, bucket_mb=1e-6)
    assert ddp.module is wrapped and list(ddp.state_dict()) == ["module." + k for k in plain.state_dict()]
    optimizers = [optim.Adam(m.parameters(), lr=0.1) for m in (plain, ddp)]
    rng = np.random.default_rng(1)
    for _ in range(3):
        x, y = tinydl.tensor(rng.standard_normal((5, 3))), tinydl.tensor(rng.integers(0, 2, 5))
        for model, optimizer in zip((plain, ddp), optimizers):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    for a, b in zip(plain.parameters(), wrapped.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    dist.save({"model": ddp.module.state_dict()}, tmp_path / "sub" / "ckpt.tdl")
    np.testing.assert_array_equal(dist.load(tmp_path / "sub" / "ckpt.tdl")["model"]["0.weight"].data,
                                  wrapped[0].weight.data)


def test_the_reduction_runs_after_backward_and_not_under_no_sync_or_grad():
    ddp = dist.DistributedDataParallel(nn.Linear(2, 1))
    calls = []
    ddp.reduce_gradients = lambda: calls.append("reduce")  # observe when the engine calls it
    x = tinydl.randn(4, 2)
    (ddp(x).sum() + ddp(x).sum()).backward()
    assert calls == ["reduce"]  # two forwards, one backward: one reduction, after the pass
    with ddp.no_sync():
        ddp(x).sum().backward()
    tinydl.grad(ddp(x).sum(), [ddp.module.weight])
    assert calls == ["reduce"]
    with tinydl.no_grad():
        assert not ddp(x).requires_grad


def test_queue_callback_outside_backward_is_refused():
    with pytest.raises(RuntimeError, match="no backward pass is in progress"):
        tinydl.autograd.queue_callback(lambda: None)


@pytest.mark.parametrize("call, message", [
    (lambda: dist.all_reduce(np.ones(2), op="max"), "op must be 'sum' or 'mean', got 'max'"),
    (lambda: dist.broadcast(np.ones(2), src=3), "src=3 is not a rank of this world of 1"),
    (lambda: dist.DistributedDataParallel(nn.Linear(2, 2), bucket_mb=0), "bucket_mb must be > 0, got 0"),
    (lambda: dist.DistributedDataParallel(nn.Linear(2, 2), bucket_mb="25"), "bucket_mb must be > 0, got '25'"),
    (lambda: dist.DistributedDataParallel(lambda x: x), "expected an nn.Module, got function"),
    (lambda: dist.DistributedSampler(range(4), num_replicas=2, rank=2), "rank 2 is not in a world of 2"),
    (lambda: dist.DistributedSampler([], num_replicas=1, rank=0), "the dataset is empty"),
])
def test_bad_input_is_refused_clearly(call, message):
    with pytest.raises((ValueError, TypeError), match=message.replace("(", r"\(")):
        call()


def run_without_mpi4py(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where ``import mpi4py`` fails."""
    prelude = "import sys; sys.modules['mpi4py'] = None\n"
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    for variable in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        environment.setdefault(variable, "")
    return subprocess.run([sys.executable, "-c", prelude + code], cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=60)


def test_without_mpi4py_a_plain_script_is_a_world_of_one_and_asking_for_mpi_names_the_pip_command():
    plain = run_without_mpi4py("import tinydl.distributed as d; print(d.world_size(), d.all_reduce(2.0))")
    assert plain.returncode == 0 and plain.stdout.split() == ["1", "2.0"], plain.stderr
    for launched in (run_without_mpi4py("import tinydl.distributed as d; d.init(require_mpi=True)"),
                     run_without_mpi4py("import tinydl.distributed as d; d.rank()", PMI_SIZE="2")):
        assert launched.returncode != 0
        assert "pip install 'tinydl[distributed]'" in launched.stderr, launched.stderr
