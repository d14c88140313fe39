"""What the ranks of the distributed tests run: ``mpiexec -n 2 python -m mpi4py ranks.py SCENARIO [ARGS]``.

Each scenario prints one JSON line from rank 0 (``RESULT {...}``) that the test reads; anything wrong on a rank
raises, which (through tinydl.distributed's exception hook) ends the job with a non-zero status.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

import tinydl
import tinydl.distributed as dist
import tinydl.functional as F
from tinydl import nn, optim
from tinydl.data import DataLoader, TensorDataset


class SmallNet(nn.Module):
    """A convolution, a pooling, two linear layers, and a head that only some samples use (label 0 only)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(3 * 3 * 3, 8)
        self.fc2 = nn.Linear(8, 4)
        self.rare = nn.Linear(8, 4)      # used for samples whose label is 0: some shards lack them
        self.never = nn.Linear(8, 4)     # used by no sample: its gradient must stay None everywhere

    def forward(self, images: tinydl.Tensor, labels: np.ndarray) -> tinydl.Tensor:
        hidden = F.relu(self.fc1(self.pool(F.relu(self.conv(images))).flatten(1)))
        logits = self.fc2(hidden)
        rare_rows = np.flatnonzero(labels == 0)
        if len(rare_rows):
            logits = logits + tinydl.tensor(np.isin(np.arange(len(labels)), rare_rows)[:, None].astype(
                logits.data.dtype)) * self.rare(hidden)
        return logits


def make_model(dtype: np.dtype) -> SmallNet:
    tinydl.manual_seed(1234 + dist.rank())   # different on purpose: the wrapper must copy rank 0's weights
    return SmallNet().to(dtype)


def batches(dtype: np.dtype, steps: int, size: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    # label 0 only in the first half of a batch on even steps: rank 1's shard then has no sample using ``rare``
    out = []
    for step in range(steps):
        labels = rng.integers(1, 4, size)
        if step % 2 == 0:
            labels[0] = 0
        out.append((rng.standard_normal((size, 2, 6, 6)).astype(dtype), labels))
    return out


def flat_parameters(model: nn.Module) -> np.ndarray:
    return np.concatenate([p.data.reshape(-1) for p in model.parameters()])


def make_optimizer(name: str, params):
    if name == "sgd":
        return optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-3)
    return optim.Adam(params, lr=0.01)


def loss_of(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> tinydl.Tensor:
    return F.cross_entropy(model(tinydl.tensor(images), labels), tinydl.tensor(labels))


def equivalence_run(dtype_name: str, optimizer_name: str, bucket_mb: float, steps: int = 4,
                    accumulate: bool = False) -> dict:
    """DDP on this rank's half of each batch against one model on the whole batch (computed on every rank)."""
    dtype = np.dtype(dtype_name)
    model = dist.DistributedDataParallel(make_model(dtype), bucket_mb=bucket_mb)
    reference = SmallNet().to(dtype)
    reference.load_state_dict(model.module.state_dict())
    optimizer = make_optimizer(optimizer_name, model.parameters())
    reference_optimizer = make_optimizer(optimizer_name, reference.parameters())
    worst, identical, never_none, rare_ok = 0.0, True, True, True
    half = slice(dist.rank() * 4, dist.rank() * 4 + 4)
    for images, labels in batches(dtype, steps):
        optimizer.zero_grad()
        reference_optimizer.zero_grad()
        if accumulate:  # two micro-batches of 2 per rank: the first inside no_sync, the second synchronised
            with model.no_sync():
                (loss_of(model, images[half][:2], labels[half][:2]) / 2).backward()
            (loss_of(model, images[half][2:], labels[half][2:]) / 2).backward()
        else:
            loss_of(model, images[half], labels[half]).backward()
        loss_of(reference, images, labels).backward()
        never_none &= model.module.never.weight.grad is None and reference.never.weight.grad is None
        rare_ok &= (model.module.rare.weight.grad is None) == (reference.rare.weight.grad is None)
        optimizer.step()
        reference_optimizer.step()
        mine = flat_parameters(model.module)
        worst = max(worst, float(np.abs(mine - flat_parameters(reference)).max()))
        replicas = dist.all_gather(mine)
        identical &= all(np.array_equal(replica, replicas[0]) for replica in replicas)
    return {"max_difference": worst, "replicas_identical": bool(identical), "unused_grad_none": bool(never_none),
            "partly_used_grad_consistent": bool(rare_ok), "buckets": len(model._buckets)}


def scenario_equivalence() -> None:
    configs = {"float64-sgd-default": ("float64", "sgd", 25.0, False),
               "float64-adam-default": ("float64", "adam", 25.0, False),
               "float64-sgd-tiny": ("float64", "sgd", 1e-6, False),
               "float64-adam-tiny": ("float64", "adam", 1e-6, False),
               "float32-sgd-default": ("float32", "sgd", 25.0, False),
               "float64-sgd-no_sync": ("float64", "sgd", 25.0, True)}
    results = {name: equivalence_run(dtype, opt, bucket, accumulate=acc)
               for name, (dtype, opt, bucket, acc) in configs.items()}
    report(results)


def scenario_fail(mode: str) -> None:
    """Rank 1 fails while rank 0 waits in a collective; it first prints the (wall-clock) time it fails at, so the
    test measures how long the job takes to end after the failure, not how long the ranks took to start."""
    dist.init()
    if dist.rank() == 1:
        time.sleep(0.5)
        print(f"rank 1 fails at {time.time():.3f}", file=sys.stderr, flush=True)
        if mode == "raise":
            raise RuntimeError("rank 1 fails on purpose")
        if mode == "exit":
            sys.exit(3)
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
    dist.all_reduce(np.ones(3))
    time.sleep(60)  # never reached on rank 1; rank 0 must be ended by the abort, not by this returning


def scenario_hang(tag: str = "") -> None:
    """The user's bug that MPI cannot report: a collective on rank 0 only. Rank 0 waits for ever. (``tag`` marks
    the processes' command lines, so the test can look for survivors.)"""
    if dist.rank() == 0:
        dist.all_reduce(np.ones(2))
    report({"unreachable": True})


def scenario_mismatch() -> None:
    width = 3 if dist.rank() == 0 else 5
    dist.DistributedDataParallel(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, width)))


def scenario_checkpoint(directory: str, resume: str) -> None:
    """Train 2 epochs of 5 steps on a sharded, shuffled, augmented dataset; save after global step 7 (mid-epoch).
    With ``resume=yes``, start from that checkpoint instead. Reports the final parameters' checksum."""
    path = Path(directory) / "ckpt.tdl"
    rng = np.random.default_rng(3)
    data = TensorDataset(rng.standard_normal((38, 2, 6, 6)), rng.integers(1, 4, 38))
    sampler = dist.DistributedSampler(data, shuffle=True, seed=11)
    noise = lambda images, generator: images + 0.01 * generator.standard_normal(images.shape)  # noqa: E731
    loader = DataLoader(data, batch_size=4, sampler=sampler, seed=5, transform=noise, prefetch=2)
    model = dist.DistributedDataParallel(make_model(np.float32))
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    step, start_epoch = 0, 0
    if resume == "yes":
        state = dist.load(path)
        model.module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        loader.load_state_dict(state["loader"])
        step, start_epoch = state["step"], state["loader"]["epoch"]
    for epoch in range(start_epoch, 2):
        sampler.set_epoch(epoch)
        for images, labels in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(images, labels.data), labels).backward()
            optimizer.step()
            step += 1
            if step == 7 and resume != "yes":
                dist.save({"model": model.module.state_dict(), "optimizer": optimizer.state_dict(),
                           "loader": loader.state_dict(), "step": step}, path)
                assert path.is_file(), f"rank {dist.rank()} passed the barrier before the checkpoint existed"
    report({"steps": step, "checksum": hashlib.sha256(flat_parameters(model.module).tobytes()).hexdigest(),
            "files": sorted(os.listdir(directory))})


def report(result: dict) -> None:
    if dist.is_main():
        print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    globals()[f"scenario_{sys.argv[1]}"](*sys.argv[2:])
