"""A small, complete training run for the resume test: an MLP with dropout, Adam, a step schedule and a shuffling,
prefetching DataLoader, over a fixed synthetic dataset.

Run as a script it resumes from a checkpoint in a fresh process:

    python tests/robustness/training.py CHECKPOINT STEPS OUTPUT

loads CHECKPOINT, trains STEPS more steps, and saves the parameters to OUTPUT (with ``tinydl.save``).
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Any

import numpy as np

import tinydl
import tinydl.functional as F
from tinydl import nn, optim
from tinydl.data import DataLoader, TensorDataset

SAMPLES, FEATURES, CLASSES, BATCH = 44, 6, 3, 8  # 6 batches an epoch, the last one short


@dataclasses.dataclass
class Run:
    model: nn.Module
    optimizer: optim.Optimizer
    scheduler: Any
    loader: DataLoader


def dataset() -> TensorDataset:
    rng = np.random.default_rng(1234)  # the data themselves are fixed; only the order is random
    features = rng.standard_normal((SAMPLES, FEATURES)).astype(np.float32)
    labels = rng.integers(0, CLASSES, SAMPLES)
    return TensorDataset(tinydl.tensor(features), tinydl.tensor(labels))


def build(seed: int) -> Run:
    """Everything random (initial weights, dropout, data order) follows ``seed``."""
    tinydl.manual_seed(seed)
    model = nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Dropout(0.25), nn.Linear(16, CLASSES))
    optimizer = optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-4)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.7)
    loader = DataLoader(dataset(), batch_size=BATCH, shuffle=True, seed=seed, prefetch=2)
    return Run(model, optimizer, scheduler, loader)


def train(run: Run, steps: int) -> dict[str, Any] | None:
    """Train ``steps`` steps (across epochs); return the checkpoint of the state right after the last step,
    taken inside the data iteration, as a training script does mid-epoch."""
    done = 0
    while True:
        for features, labels in run.loader:
            loss = F.cross_entropy(run.model(features), labels)
            run.optimizer.zero_grad()
            loss.backward()
            run.optimizer.step()
            run.scheduler.step()
            done += 1
            if done == steps:
                return checkpoint(run)


def checkpoint(run: Run) -> dict[str, Any]:
    return {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(), "loader": run.loader.state_dict(),
            "rng": tinydl.default_generator().bit_generator.state}


def restore(run: Run, state: dict[str, Any]) -> None:
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.loader.load_state_dict(state["loader"])
    tinydl.default_generator().bit_generator.state = state["rng"]


def parameters(run: Run) -> dict[str, np.ndarray]:
    return {name: param.numpy().copy() for name, param in run.model.named_parameters()}


def main(checkpoint_path: str, steps: int, output_path: str) -> None:
    run = build(seed=999)  # a different seed: everything that matters must come from the checkpoint
    restore(run, tinydl.load(checkpoint_path))
    train(run, steps)
    tinydl.save(parameters(run), output_path)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
