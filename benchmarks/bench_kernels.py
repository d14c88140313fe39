"""The convolution and pooling kernels of the article's CIFAR-10 CNN: tinydl (NumPy) against PyTorch, per kernel.

    python benchmarks/bench_kernels.py [--threads N] [--trials N] [--batch N]

Each row times one kernel at its shape in the training step (batch 64, float32), forward and backward separately,
tinydl and PyTorch alternating trial by trial in one process with the same thread count (harness.py); it prints
the ratio tinydl / PyTorch of the median times first. Forward runs with gradients recorded (as in training: max
pooling then also keeps its argmax); backward is ``y.backward(gy)`` on a retained graph and computes what the step
needs: for conv1 the weight and bias gradients only (its input is the images), for every other layer the input
gradient too.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

from harness import HEADER, compare, set_threads, torch_or_none


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, help="threads for NumPy's BLAS and PyTorch (default: all cores)")
    parser.add_argument("--trials", type=int, default=30, help="timed trials per row (default: 30)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default: 64, the article's)")
    parser.add_argument("--quick", action="store_true", help="3 trials: a smoke run, not a measurement")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.trials = 3
    return arguments


ARGS = parse_arguments()
THREADS = set_threads(ARGS.threads)  # before NumPy is imported: its BLAS reads the thread count once

import numpy as np  # noqa: E402

import tinydl  # noqa: E402
from tinydl.functional.conv import conv2d  # noqa: E402
from tinydl.functional.pooling import max_pool2d  # noqa: E402

torch = torch_or_none()


def conv_layer(channels: int, out_channels: int, side: int, input_needs_grad: bool) -> list[tuple[str, Any, Any]]:
    """(name, tinydl case, torch case) for a 3x3 convolution with padding 1, forward and backward."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((ARGS.batch, channels, side, side), dtype=np.float32)
    weight = rng.standard_normal((out_channels, channels, 3, 3), dtype=np.float32) * 0.1
    bias = rng.standard_normal(out_channels, dtype=np.float32)
    grad = rng.standard_normal((ARGS.batch, out_channels, side, side), dtype=np.float32)

    def ours() -> tuple[Callable, Callable]:
        inputs = [tinydl.Tensor(x, requires_grad=input_needs_grad), tinydl.Tensor(weight, requires_grad=True),
                  tinydl.Tensor(bias, requires_grad=True)]
        return lambda: conv2d(*inputs, padding=1), backward(lambda: conv2d(*inputs, padding=1), grad, inputs,
                                                            tinydl.Tensor)

    def theirs() -> tuple[Callable, Callable]:
        inputs = [torch.tensor(x, requires_grad=input_needs_grad), torch.tensor(weight, requires_grad=True),
                  torch.tensor(bias, requires_grad=True)]
        run = lambda: torch.nn.functional.conv2d(*inputs, padding=1)  # noqa: E731
        return run, backward(run, grad, inputs, torch.tensor)

    name = f"conv2d {channels}->{out_channels} 3x3 pad 1 @ {side}x{side}"
    return [(name, ours, theirs if torch else None)]


def pool_layer(channels: int, side: int) -> list[tuple[str, Any, Any]]:
    """(name, tinydl case, torch case) for 2x2 max pooling of a ReLU output (many tied zeros)."""
    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal((ARGS.batch, channels, side, side), dtype=np.float32), 0)
    grad = rng.standard_normal((ARGS.batch, channels, side // 2, side // 2), dtype=np.float32)

    def ours() -> tuple[Callable, Callable]:
        inputs = [tinydl.Tensor(x, requires_grad=True)]
        run = lambda: max_pool2d(inputs[0], 2)  # noqa: E731
        return run, backward(run, grad, inputs, tinydl.Tensor)

    def theirs() -> tuple[Callable, Callable]:
        inputs = [torch.tensor(x, requires_grad=True)]
        run = lambda: torch.nn.functional.max_pool2d(inputs[0], 2)  # noqa: E731
        return run, backward(run, grad, inputs, torch.tensor)

    return [(f"max_pool2d 2x2 @ {channels}x{side}x{side}", ours, theirs if torch else None)]


def backward(forward: Callable, grad: np.ndarray, inputs: list, wrap: Callable) -> Callable:
    """A callable that backpropagates ``grad`` through one recorded forward pass (kept with retain_graph)."""
    output, seed = forward(), wrap(grad)

    def run() -> None:
        for tensor in inputs:
            tensor.grad = None
        output.backward(seed, retain_graph=True)
    return run


def main() -> None:
    print(f"batch {ARGS.batch}, float32, {THREADS} threads, medians of {ARGS.trials} interleaved trials")
    print(HEADER)
    cases = (conv_layer(3, 64, 32, input_needs_grad=False) + pool_layer(64, 32)
             + conv_layer(64, 128, 16, input_needs_grad=True) + pool_layer(128, 16))
    totals = [0.0, 0.0]
    for name, ours, theirs in cases:
        our_forward, our_backward = ours()
        their_forward, their_backward = theirs() if theirs else (None, None)
        for part, mine, peer in [("forward", our_forward, their_forward), ("backward", our_backward, their_backward)]:
            result = compare(f"{name} {part}", mine, peer, trials=ARGS.trials)
            print(result.row(), flush=True)
            totals[0] += result.ours_ms
            totals[1] += result.peer_ms or 0.0
    if torch:
        print(f"{'all of the above':<44} {totals[0] / totals[1]:6.2f}  {totals[0]:9.3f}  {totals[1]:9.3f}")


if __name__ == "__main__":
    main()
