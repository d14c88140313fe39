"""Where Winograd convolution beats im2col: the crossover that ``tinydl.kernels.conv.winograd_pays`` encodes.

    python benchmarks/bench_winograd.py [--threads N] [--trials N] [--clock wall|cpu] [--quick]

For 3x3, stride-1, padding-1 convolutions over a grid of (batch, in channels, out channels, side), each row gives
the time of im2col, Winograd F(2x2, 3x3) and F(4x4, 3x3) for the forward pass, the input gradient and the weight
gradient (medians of trials interleaved between the three), and the ratio F(4x4)/im2col per pass. ``--clock cpu``
(the default) measures the process's CPU time, which on a machine shared with other jobs stays close to the work
done, where wall time does not; with more than one thread it also counts BLAS threads waiting, so use it with
``--threads 1`` (the default).
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

from harness import set_threads


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="threads for NumPy's BLAS (default: 1)")
    parser.add_argument("--trials", type=int, default=5, help="timed trials per kernel (default: 5)")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="what to time (default: cpu)")
    parser.add_argument("--quick", action="store_true", help="one trial of two shapes: a smoke run")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.trials = 1
    return arguments


ARGS = parse_arguments()
set_threads(ARGS.threads)

import numpy as np  # noqa: E402

from tinydl.kernels import conv, winograd  # noqa: E402
from tinydl.kernels.geometry import Conv2dGeometry  # noqa: E402

SHAPES = [(64, 3, 64, 32), (64, 3, 16, 32), (64, 8, 8, 32), (64, 16, 16, 32), (64, 16, 32, 16), (64, 32, 32, 16),
          (64, 64, 128, 16), (64, 32, 64, 8), (64, 128, 128, 8), (64, 64, 64, 4), (64, 256, 256, 4),
          (64, 128, 128, 2), (8, 64, 64, 8), (2, 64, 64, 32)]
GEOMETRY = Conv2dGeometry(padding=((1, 1), (1, 1)))
CLOCK = time.process_time if ARGS.clock == "cpu" else time.perf_counter


def medians(functions: list[Callable[[], object]]) -> list[float]:
    """Median ms of each function, trials interleaved, after one warm-up call each."""
    times: list[list[float]] = [[] for _ in functions]
    for function in functions:
        function()
    for _ in range(ARGS.trials):
        for samples, function in zip(times, functions):
            start = CLOCK()
            function()
            samples.append((CLOCK() - start) * 1000)
    return [statistics.median(samples) for samples in times]


def main() -> None:
    print(f"3x3 stride-1 convolutions, float32, {ARGS.threads} thread(s), {ARGS.clock} time, median of "
          f"{ARGS.trials}; ms for im2col / F(2x2) / F(4x4), then F(4x4)/im2col")
    print(f"{'batch, in, out, side':<22} {'forward':>20} {'input grad':>20} {'weight grad':>20}   ratios")
    rng = np.random.default_rng(0)
    for batch, channels, out_channels, side in SHAPES[:2] if ARGS.quick else SHAPES:
        x = rng.standard_normal((batch, channels, side, side), dtype=np.float32)
        weight = rng.standard_normal((out_channels, channels, 3, 3), dtype=np.float32)
        grad = rng.standard_normal((batch, out_channels, side, side), dtype=np.float32)
        passes = [
            [lambda: conv.im2col_forward(x, weight, None, GEOMETRY)]
            + [lambda t=t: winograd.winograd_forward(x, weight, None, GEOMETRY, t) for t in winograd.TILES.values()],
            [lambda: conv.im2col_input_grad(grad, weight, x.shape, GEOMETRY)]
            + [lambda t=t: winograd.winograd_input_grad(grad, weight, x.shape, GEOMETRY, t)
               for t in winograd.TILES.values()],
            [lambda: conv.im2col_weight_grad(x, grad, weight.shape, GEOMETRY)]
            + [lambda t=t: winograd.winograd_weight_grad(x, grad, weight.shape, GEOMETRY, t)
               for t in winograd.TILES.values()]]
        results = [medians(functions) for functions in passes]
        cells = " ".join(f"{'/'.join(f'{v:.1f}' for v in times):>20}" for times in results)
        ratios = " ".join(f"{times[2] / times[0]:.2f}" for times in results)
        print(f"{str((batch, channels, out_channels, side)):<22} {cells}   {ratios}", flush=True)


if __name__ == "__main__":
    main()
