"""tinydl's intra-op threads (tinydl/kernels/threads.py) on against off, in one process, in settled turns.

    python benchmarks/ab_threads.py [--threads 2] [--rounds 6] [--quick]

Each row times the same work with ``tinydl.set_num_threads(1)`` and with ``--threads`` threads, alternating in
turns (harness.py: each turn runs untimed first, so that idle BLAS threads of the previous turn have stopped
spinning), and prints the median of each and the median of the per-round ratios on/off. Rows: the element-wise
kernels alone at the CNN's first layer (batch 64, 64 channels, 32x32: ReLU, max-pool and GELU, forward and
backward), the article CNN's training step at batch 64, and its inference at batch 1000.
"""
from __future__ import annotations

import argparse
import statistics
from typing import Callable

from article_cnn import article_cnn, training_step
from harness import set_threads, timed_turn

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--threads", type=int, default=2, help="threads for the BLAS and for tinydl's kernels")
parser.add_argument("--rounds", type=int, default=6, help="turns of each setting per row")
parser.add_argument("--quick", action="store_true", help="one round, inference at batch 100: a smoke run")
ARGS = parser.parse_args()
set_threads(ARGS.threads)

import numpy as np  # noqa: E402

import tinydl  # noqa: E402
import tinydl.functional as F  # noqa: E402


def elementwise(op: Callable, shape: tuple[int, ...], gradient_shape: tuple[int, ...]) -> Callable[[], None]:
    rng = np.random.default_rng(0)
    x = tinydl.tensor(rng.standard_normal(shape, dtype=np.float32), requires_grad=True)
    gradient = tinydl.tensor(rng.standard_normal(gradient_shape, dtype=np.float32))

    def run() -> None:
        op(x).backward(gradient)
        x.grad = None
    return run


def cnn_step() -> Callable[[], None]:
    rng = np.random.default_rng(0)
    model = article_cnn(tinydl.nn)
    return training_step(model, tinydl.optim.Adam(model.parameters(), lr=1e-3), F.cross_entropy,
                         tinydl.tensor(rng.standard_normal((64, 3, 32, 32), dtype=np.float32)),
                         tinydl.tensor(rng.integers(0, 10, 64)))


def cnn_inference(batch: int) -> Callable[[], None]:
    model = article_cnn(tinydl.nn).eval()
    images = tinydl.tensor(np.random.default_rng(0).standard_normal((batch, 3, 32, 32), dtype=np.float32))

    def run() -> None:
        with tinydl.no_grad():
            model(images)
    return run


def toggle(name: str, run: Callable[[], None], rounds: int) -> None:
    times: dict[int, list[float]] = {1: [], ARGS.threads: []}
    for round_ in range(rounds):
        for count in ((1, ARGS.threads) if round_ % 2 == 0 else (ARGS.threads, 1)):
            tinydl.set_num_threads(count)
            times[count].append(statistics.median(timed_turn(run, 3)))
    tinydl.set_num_threads(None)
    ratios = [on / off for off, on in zip(times[1], times[ARGS.threads])]
    print(f"{name:<44} {statistics.median(times[1]):9.2f} {statistics.median(times[ARGS.threads]):9.2f} "
          f"{statistics.median(ratios):7.3f}", flush=True)


def main() -> None:
    rounds = 1 if ARGS.quick else ARGS.rounds
    layer, pooled = (64, 64, 32, 32), (64, 64, 16, 16)
    print(f"{'ms, median of settled turns':<44} {'1 thread':>9} {f'{ARGS.threads} thr.':>9} {'on/off':>7}")
    toggle("ReLU fwd+bwd 64x64x32x32", elementwise(F.relu, layer, layer), rounds)
    toggle("max_pool2d 2x2 fwd+bwd 64x64x32x32", elementwise(lambda x: F.max_pool2d(x, 2), layer, pooled), rounds)
    toggle("GELU fwd+bwd 64x64x32x32", elementwise(F.gelu, layer, layer), rounds)
    toggle("CNN training step, batch 64", cnn_step(), rounds)
    batch = 100 if ARGS.quick else 1000
    toggle(f"CNN inference, batch {batch}", cnn_inference(batch), rounds)


if __name__ == "__main__":
    main()
