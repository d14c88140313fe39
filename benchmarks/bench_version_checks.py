"""What the version checks (tinydl/versions.py) cost: the same work with and without them, alternating in one
process.

    python benchmarks/bench_version_checks.py [--trials 15] [--quick]

"Without" swaps ``tinydl.versions.record`` for a function that records nothing, so no op saves versions and
backward checks none; everything else (counters shared by views, bumps) stays. The ratio column is
with / without: 1.00 means free. Two workloads: the article's CNN training step (examples/cnn_cifar10.py's
model, batch 64, Adam; one thread) and the 10,000-op chain of bench_overhead.py (pure bookkeeping).
"""
from __future__ import annotations

import argparse
import pathlib
import sys

from harness import HEADER, compare, set_threads

set_threads(1)

import numpy as np  # noqa: E402

import tinydl  # noqa: E402
import tinydl.functional as F  # noqa: E402
from tinydl import optim, versions  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "examples"))
from cnn_cifar10 import Net  # noqa: E402


def without_checks(work):
    """``work`` run with version recording switched off."""
    def run():
        recording = versions.record
        versions.record = lambda function, inputs, outputs: None
        try:
            work()
        finally:
            versions.record = recording
    return run


def cnn_step(batch: int):
    tinydl.manual_seed(0)
    model = Net()
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    images = tinydl.tensor(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32))
    labels = tinydl.tensor(rng.integers(0, 10, batch))

    def step():
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return step


def op_chain(ops: int):
    rng = np.random.default_rng(0)
    x, a, b = (tinydl.tensor(rng.standard_normal(16).astype(np.float32) * 0.1, requires_grad=True)
               for _ in range(3))

    def run():
        y = x
        for _ in range(ops // 3):
            y = tinydl.tanh(y * a + b)
        y.sum().backward()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="batch 8, a 999-op chain, 2 trials: a smoke run")
    args = parser.parse_args()
    batch, ops, trials = (8, 999, 2) if args.quick else (64, 10_000, args.trials)
    print(HEADER.replace("tinydl ms", "  with ms").replace("torch ms", "  w/o ms"))
    for name, work in [(f"CNN training step, batch {batch}", cnn_step(batch)),
                       (f"chain of {ops} ops, forward + backward", op_chain(ops))]:
        print(compare(name, work, without_checks(work), trials=trials, warmup=2).row(), flush=True)


if __name__ == "__main__":
    main()
