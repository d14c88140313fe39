"""The article's CIFAR-10 CNN on the CPU: tinydl (NumPy) against PyTorch, same weights, same threads, one process.

    python benchmarks/bench_cnn.py [--quick] [--threads N] [--trials N]

Three parts, each printed as rows of ``ratio  tinydl ms  torch ms`` (ratio = tinydl / torch, medians of trials
interleaved with the peer's; see harness.py):

1. the training step at batch 64, float32: forward, cross-entropy, backward, Adam update;
2. inference at batch 1000 under no_grad, also given in images/s;
3. the layers of the model one by one at their shapes in the step, forward and backward (the conv and pooling
   rows come from bench_kernels.py; Linear and cross-entropy are added here in its format).

The step is about 9.3 GFLOP: 2 FLOP per multiply-add, times the multiply-adds of the convolutions and Linear
layers at batch 64, times 3 (forward, input gradient, weight gradient), except conv1 whose input (the images)
needs no gradient; so ms/step also says how close to the GEMM peak (~235 GFLOP/s here) the step runs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from article_cnn import article_cnn, training_step
from harness import HEADER, compare, set_threads, torch_or_none


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few trials: a smoke run, not a measurement")
    parser.add_argument("--threads", type=int, help="threads for NumPy's BLAS and PyTorch (default: all cores)")
    parser.add_argument("--trials", type=int, help="timed trials per row (default: 20, or 3 with --quick)")
    return parser.parse_args()


ARGS = parse_arguments()
THREADS = set_threads(ARGS.threads)  # before NumPy is imported: its BLAS reads the thread count once

import numpy as np  # noqa: E402

import tinydl  # noqa: E402
import tinydl.functional as F  # noqa: E402
from tinydl import optim  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from cnn_cifar10 import Net  # noqa: E402  (the article's model, as the example trains it)

TRAIN_BATCH, INFERENCE_BATCH = 64, 1000
CONV1_MACS, LATER_MACS = 32 * 32 * 64 * 27, 16 * 16 * 128 * 576 + 8192 * 512 + 512 * 10  # per image
STEP_GFLOP = 2 * TRAIN_BATCH * (2 * CONV1_MACS + 3 * LATER_MACS) / 1e9


def torch_net(torch, model: Net):
    """The same network in PyTorch, holding copies of ``model``'s weights."""
    peer = article_cnn(torch.nn)
    names = {"conv1": "0", "conv2": "3", "fc1": "7", "fc2": "9"}
    weights = {f"{names[key.split('.')[0]]}.{key.split('.')[1]}": torch.from_numpy(value.numpy().copy())
               for key, value in model.state_dict().items()}
    peer.load_state_dict(weights)
    probe = np.random.default_rng(1).standard_normal((2, 3, 32, 32), dtype=np.float32)
    with tinydl.no_grad(), torch.no_grad():
        np.testing.assert_allclose(model(tinydl.tensor(probe)).numpy(), peer(torch.from_numpy(probe)).numpy(),
                                   rtol=1e-4, atol=1e-5, err_msg="bench_cnn: the PyTorch peer is not the same net")
    return peer


def training_steps(torch, images: np.ndarray, labels: np.ndarray) -> tuple[Callable, Callable | None]:
    """One Adam step of each library on the same batch, from the same initial weights."""
    model = Net()
    ours = training_step(model, optim.Adam(model.parameters(), lr=1e-3), F.cross_entropy, tinydl.tensor(images),
                         tinydl.tensor(labels))
    if torch is None:
        return ours, None
    peer_model = torch_net(torch, model)
    peer = training_step(peer_model, torch.optim.Adam(peer_model.parameters(), lr=1e-3),
                         torch.nn.functional.cross_entropy, torch.from_numpy(images), torch.from_numpy(labels))
    return ours, peer


def inference(torch, images: np.ndarray) -> tuple[Callable, Callable | None]:
    model = Net().eval()
    x = tinydl.tensor(images)

    def ours() -> None:
        with tinydl.no_grad():
            model(x)

    if torch is None:
        return ours, None
    peer_model, tx = torch_net(torch, model).eval(), torch.from_numpy(images)

    def peer() -> None:
        with torch.no_grad():
            peer_model(tx)

    return ours, peer


def import_kernel_benchmarks(trials: int):
    """bench_kernels.py (the conv and pooling rows) parses its own command line when imported: hand it ours."""
    command_line = sys.argv
    sys.argv = [command_line[0], "--batch", str(TRAIN_BATCH), "--threads", str(THREADS), "--trials", str(trials)]
    try:
        import bench_kernels
    finally:
        sys.argv = command_line
    return bench_kernels


def linear_layer(kernels) -> list[tuple[str, Callable, Callable | None]]:
    """fc1 of the model, 8192 -> 512, in bench_kernels' case format (forward, backward with all gradients)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((TRAIN_BATCH, 8192), dtype=np.float32)
    weight = rng.standard_normal((512, 8192), dtype=np.float32) * 0.01
    bias = rng.standard_normal(512, dtype=np.float32)
    grad = rng.standard_normal((TRAIN_BATCH, 512), dtype=np.float32)

    def case(linear, wrap) -> Callable:
        def build() -> tuple[Callable, Callable]:
            inputs = [wrap(v, requires_grad=True) for v in (x, weight, bias)]
            run = lambda: linear(*inputs)  # noqa: E731
            return run, kernels.backward(run, grad, inputs, wrap)
        return build

    peer = None if kernels.torch is None else case(kernels.torch.nn.functional.linear, kernels.torch.tensor)
    return [("linear 8192->512", case(F.linear, tinydl.tensor), peer)]


def cross_entropy_layer(kernels) -> list[tuple[str, Callable, Callable | None]]:
    """The loss on the logits of a batch: fused log-softmax and negative log-likelihood, mean over the batch."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((TRAIN_BATCH, 10), dtype=np.float32)
    labels = rng.integers(0, 10, TRAIN_BATCH)
    grad = np.float32(1.0)

    def case(cross_entropy, wrap) -> Callable:
        def build() -> tuple[Callable, Callable]:
            inputs, target = [wrap(logits, requires_grad=True)], wrap(labels)
            run = lambda: cross_entropy(inputs[0], target)  # noqa: E731
            return run, kernels.backward(run, grad, inputs, wrap)
        return build

    peer = None if kernels.torch is None else case(kernels.torch.nn.functional.cross_entropy, kernels.torch.tensor)
    return [("cross_entropy 64x10", case(F.cross_entropy, tinydl.tensor), peer)]


def print_layer_rows(trials: int, warmup: int) -> None:
    """Forward and backward of each layer of the step at its own shapes (bench_kernels' format and helpers)."""
    kernels = import_kernel_benchmarks(trials)
    cases = (kernels.conv_layer(3, 64, 32, input_needs_grad=False) + kernels.pool_layer(64, 32)
             + kernels.conv_layer(64, 128, 16, input_needs_grad=True) + kernels.pool_layer(128, 16)
             + linear_layer(kernels) + cross_entropy_layer(kernels))
    for name, ours, theirs in cases:
        our_forward, our_backward = ours()
        their_forward, their_backward = theirs() if theirs else (None, None)
        for part, mine, peer in (("forward", our_forward, their_forward), ("backward", our_backward, their_backward)):
            print(compare(f"{name} {part}", mine, peer, trials=trials, warmup=warmup).row(), flush=True)


def main() -> None:
    torch = torch_or_none()
    trials = ARGS.trials or (3 if ARGS.quick else 20)
    warmup = 1 if ARGS.quick else 3
    rng = np.random.default_rng(0)
    tinydl.manual_seed(0)
    images = rng.standard_normal((TRAIN_BATCH, 3, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, TRAIN_BATCH)
    batch = rng.standard_normal((INFERENCE_BATCH, 3, 32, 32)).astype(np.float32)

    versions = f"numpy {np.__version__}" + ("" if torch is None else f", torch {torch.__version__}")
    print(f"article CNN, float32, {THREADS} thread(s), {trials} interleaved trials per row ({versions})\n")
    print(HEADER)
    step = compare("training step, batch 64 (fwd+bwd+Adam)", *training_steps(torch, images, labels), trials=trials,
                   warmup=warmup)
    print(step.row())
    inferred = compare("inference, batch 1000 (no_grad)", *inference(torch, batch), trials=max(trials // 2, 3),
                       warmup=warmup)
    print(inferred.row())
    print_layer_rows(trials, warmup)

    print(f"\ntraining step: {STEP_GFLOP:.1f} GFLOP; tinydl {STEP_GFLOP / step.ours_ms * 1e3:.0f} GFLOP/s"
          + ("" if step.peer_ms is None else f", torch {STEP_GFLOP / step.peer_ms * 1e3:.0f} GFLOP/s"))
    print(f"inference: tinydl {images_per_second(inferred.ours_ms):.0f} images/s"
          + ("" if inferred.peer_ms is None else f", torch {images_per_second(inferred.peer_ms):.0f} images/s"))
    if step.ratio is not None:
        print(f"training step ratio tinydl/torch: {step.ratio:.2f} (target <= 0.9)")


def images_per_second(milliseconds: float) -> float:
    return INFERENCE_BATCH / milliseconds * 1e3


if __name__ == "__main__":
    main()
