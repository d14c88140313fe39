"""What watching the engine costs: the article CNN's training step (batch 64) with and without the profiler.

    python benchmarks/bench_profiler.py [--trials 7] [--batch 64] [--threads N]

Rows ``ratio  profiled ms  plain ms`` (ratio = profiled / plain; medians of interleaved trials, see harness.py),
for ``profile(flops=True, memory=True)``. The target is a ratio under 1.10. On a shared machine the step's ratio
wanders by more than the profiler costs, so a second row times a chain of 3,000 tiny ops, where the profiler's
bookkeeping is all there is to see, and the last line turns that into microseconds per event and the share of
the step's time that the step's events cost.
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

    step = compare(f"CNN step, batch {ARGS.batch}, profiled vs plain", profiled, plain, trials=ARGS.trials,
                   warmup=1)
    x = tinydl.tensor(np.ones(16, np.float32), requires_grad=True)

    def chain() -> None:
        y = x
        for _ in range(1000):
            y = F.tanh(y * x + x)
        y.sum().backward()

    def profiled_chain() -> tinydl.profiler.profile:
        with tinydl.profiler.profile(flops=True, memory=True) as prof:
            chain()
        return prof

    tiny = compare("chain of 3000 tiny ops, profiled vs plain", profiled_chain, chain, trials=ARGS.trials, warmup=1)
    with tinydl.profiler.profile() as prof:
        plain()
    per_event_ms = (tiny.ours_ms - tiny.peer_ms) / len(profiled_chain().records)
    print(HEADER.replace("tinydl ms", "profiled").replace("torch ms", "plain ms"))
    print(step.row())
    print(tiny.row())
    print(f"profiler cost {per_event_ms * 1e3:.1f} us per event; the CNN step makes {len(prof.records)} events: "
          f"{per_event_ms * len(prof.records):.2f} ms, {100 * per_event_ms * len(prof.records) / step.peer_ms:.2f}% "
          "of its plain time")


if __name__ == "__main__":
    main()
