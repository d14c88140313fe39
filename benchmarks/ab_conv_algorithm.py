"""The article CNN's training step with im2col everywhere against Winograd where "auto" takes it, in one process.

    python benchmarks/ab_conv_algorithm.py [--threads N] [--pairs 9] [--profile]

Both configurations train the same model on the same batch, switched step by step (`set_conv_algorithm`), so
the machine's drift hits both alike. With one thread the clock is the process's CPU time, with more the wall
clock. "auto" chooses Winograd only with one BLAS thread (`winograd_pays`); to see what it would cost with more,
this script lets it choose as if there were one. `--profile` adds cProfile's top rows for two steps of each.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

from harness import set_threads

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default: 1)")
parser.add_argument("--pairs", type=int, default=9, help="alternating pairs of steps (default: 9)")
parser.add_argument("--profile", action="store_true", help="also print cProfile's top rows for each")
ARGS = parser.parse_args()
set_threads(ARGS.threads)  # before NumPy is imported

import numpy as np  # noqa: E402

import tinydl  # noqa: E402
import tinydl.functional as F  # noqa: E402
from tinydl import optim  # noqa: E402
from tinydl.kernels import conv  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from cnn_cifar10 import Net  # noqa: E402

conv.blas_threads = lambda: 1  # let "auto" choose as with one thread, whatever --threads says


def main() -> None:
    clock = time.process_time if ARGS.threads == 1 else time.perf_counter
    rng = np.random.default_rng(0)
    tinydl.manual_seed(0)
    model = Net()
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    x = tinydl.tensor(rng.standard_normal((64, 3, 32, 32)).astype(np.float32))
    y = tinydl.tensor(rng.integers(0, 10, 64))

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    times: dict[str, list[float]] = {"im2col": [], "auto": []}
    for algorithm in times:
        conv.set_conv_algorithm(algorithm)
        step(), step()
    for _ in range(ARGS.pairs):
        for algorithm, record in times.items():
            conv.set_conv_algorithm(algorithm)
            start = clock()
            step()
            record.append((clock() - start) * 1e3)
    print(f"article CNN step, batch 64, {ARGS.threads} BLAS thread(s), {'CPU' if ARGS.threads == 1 else 'wall'} ms, "
          f"{ARGS.pairs} alternating pairs, load {os.getloadavg()[0]:.1f}")
    for algorithm, record in times.items():
        print(f"{algorithm:>7}: median {statistics.median(record):7.1f}  (min {min(record):.0f}, max {max(record):.0f})")
    if ARGS.profile:
        for algorithm in times:
            conv.set_conv_algorithm(algorithm)
            profile = cProfile.Profile()
            profile.enable()
            step(), step()
            profile.disable()
            report = io.StringIO()
            pstats.Stats(profile, stream=report).sort_stats("tottime").print_stats(10)
            print(f"\n{algorithm}, two steps:\n" + report.getvalue().split("\n\n", 1)[-1].strip())


if __name__ == "__main__":
    main()
