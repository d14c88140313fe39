"""What watching the engine costs: the article CNN's training step (batch 64) with and without the profiler.

    python benchmarks/bench_profiler.py [--trials 7] [--batch 64] [--threads N]

Rows ``ratio  profiled ms  plain ms`` (ratio = profiled / plain; medians of interleaved trials, see harness.py),
for ``profile(flops=True, memory=True)``. The target is a ratio under 1.10.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness import HEADER, compare, set_threads

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--trials", type=int, default=7)
parser.add_argument("--batch", type=int, default=64)
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--quick", action="store_true", help="batch 8, 2 trials: a smoke run")
ARGS = parser.parse_args()
if ARGS.quick:
    ARGS.batch, ARGS.trials = 8, 2
set_threads(ARGS.threads)

import numpy as np  # noqa: E402

import tinydl  # noqa: E402
import tinydl.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from cnn_cifar10 import Net  # noqa: E402


def main() -> None:
    tinydl.manual_seed(0)
    model = Net()
    images = tinydl.randn(ARGS.batch, 3, 32, 32)
    labels = tinydl.tensor(np.arange(ARGS.batch) % 10)

    def plain() -> None:
        model.zero_grad()
        F.cross_entropy(model(images), labels).backward()

    def profiled() -> None:
        with tinydl.profiler.profile(flops=True, memory=True):
            plain()

    result = compare(f"CNN step, batch {ARGS.batch}, profiled vs plain", profiled, plain, trials=ARGS.trials,
                     warmup=1)
    print(HEADER.replace("tinydl ms", "profiled").replace("torch ms", "plain ms"))
    print(result.row())


if __name__ == "__main__":
    main()
