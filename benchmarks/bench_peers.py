"""The article's CNN training step in the other NumPy engines, DeZero 0.0.13 and Chainer 7.8.1, beside tinydl and
PyTorch (optional: none of them is a dependency of tinydl; a peer that is not installed, or does not import, is
reported and skipped).

    python benchmarks/bench_peers.py [--threads N] [--trials N] [--quick]

Same model as bench_cnn.py (conv 3->64, ReLU, 2x2 max-pool, conv 64->128, ReLU, pool, Linear 8192->512, ReLU,
Linear 512->10), batch 64, float32, softmax cross-entropy, Adam; every library's own initial weights (the step's
cost does not depend on them). The steps run in turn, trial by trial, each turn settled first (harness.py: the
previous library's idle threads would hold a core), and each is printed as its median time and its ratio to
PyTorch's.

Both peers predate NumPy 2, which removed the aliases ``np.int``, ``np.float``, ``np.bool``, ``np.object`` and
``np.sctypes`` that they use; this script puts those names back (as the builtins they aliased) before importing
them, and says so. Chainer 7.8.1 also imports ``pkg_resources``, which setuptools dropped in version 81.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Callable

from article_cnn import article_cnn, training_step
from harness import set_threads, timed_turn, torch_or_none


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, help="threads for NumPy's BLAS and PyTorch (default: all cores)")
    parser.add_argument("--trials", type=int, default=7, help="timed trials per library (default: 7)")
    parser.add_argument("--quick", action="store_true", help="one trial: a smoke run, not a measurement")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.trials = 1
    return arguments


ARGS = parse_arguments()
THREADS = set_threads(ARGS.threads)

import numpy as np  # noqa: E402

import tinydl  # noqa: E402
import tinydl.functional as F  # noqa: E402
from tinydl import optim  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from cnn_cifar10 import Net  # noqa: E402  (the article's model, as the example trains it)

BATCH = 64


def restore_numpy_1_aliases() -> None:
    """np.int & co., removed in NumPy 2, as the builtins they aliased (for the peers' imports only)."""
    for name, value in {"int": int, "float": float, "bool": bool, "object": object, "complex": complex}.items():
        if name not in np.__dict__:
            setattr(np, name, value)
    if "sctypes" not in np.__dict__:
        np.sctypes = {"int": [np.int8, np.int16, np.int32, np.int64], "uint": [np.uint8, np.uint16, np.uint32,
                                                                              np.uint64],
                      "float": [np.float16, np.float32, np.float64], "complex": [np.complex64, np.complex128],
                      "others": [bool, object, bytes, str, np.void]}


def tinydl_step(images: np.ndarray, labels: np.ndarray) -> Callable[[], None]:
    model = Net()
    return training_step(model, optim.Adam(model.parameters(), lr=1e-3), F.cross_entropy, tinydl.tensor(images),
                         tinydl.tensor(labels))


def torch_step(torch, images: np.ndarray, labels: np.ndarray) -> Callable[[], None]:
    model = article_cnn(torch.nn)
    return training_step(model, torch.optim.Adam(model.parameters(), lr=1e-3), torch.nn.functional.cross_entropy,
                         torch.from_numpy(images), torch.from_numpy(labels))


def dezero_step(images: np.ndarray, labels: np.ndarray) -> Callable[[], None]:
    import dezero
    import dezero.functions as DF
    import dezero.layers as DL

    class Net(dezero.Model):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.conv2 = DL.Conv2d(64, 3, pad=1), DL.Conv2d(128, 3, pad=1)
            self.fc1, self.fc2 = DL.Linear(512), DL.Linear(10)

        def forward(self, x):
            x = DF.pooling(DF.relu(self.conv1(x)), 2, 2)
            x = DF.pooling(DF.relu(self.conv2(x)), 2, 2)
            return self.fc2(DF.relu(self.fc1(DF.reshape(x, (x.shape[0], -1)))))

    model = Net()
    optimizer = dezero.optimizers.Adam(1e-3).setup(model)

    def step() -> None:
        loss = DF.softmax_cross_entropy(model(images), labels)
        model.cleargrads()
        loss.backward()
        optimizer.update()
    return step


def chainer_step(images: np.ndarray, labels: np.ndarray) -> Callable[[], None]:
    import chainer
    import chainer.functions as CF
    import chainer.links as CL

    class Net(chainer.Chain):
        def __init__(self) -> None:
            super().__init__()
            with self.init_scope():
                self.conv1, self.conv2 = CL.Convolution2D(3, 64, 3, pad=1), CL.Convolution2D(64, 128, 3, pad=1)
                self.fc1, self.fc2 = CL.Linear(8192, 512), CL.Linear(512, 10)

        def forward(self, x):
            x = CF.max_pooling_2d(CF.relu(self.conv1(x)), 2)
            x = CF.max_pooling_2d(CF.relu(self.conv2(x)), 2)
            return self.fc2(CF.relu(self.fc1(x)))

    model = Net()
    optimizer = chainer.optimizers.Adam(1e-3)
    optimizer.setup(model)
    targets = labels.astype(np.int32)

    def step() -> None:
        loss = CF.softmax_cross_entropy(model(images), targets)
        model.cleargrads()
        loss.backward()
        optimizer.update()
    return step


def main() -> None:
    rng = np.random.default_rng(0)
    images = rng.standard_normal((BATCH, 3, 32, 32), dtype=np.float32)
    labels = rng.integers(0, 10, BATCH)
    steps: dict[str, Callable[[], None]] = {"tinydl": tinydl_step(images, labels)}
    torch = torch_or_none()
    if torch is not None:
        steps["PyTorch " + torch.__version__] = torch_step(torch, images, labels)
    restore_numpy_1_aliases()
    for name, build in (("DeZero", dezero_step), ("Chainer", chainer_step)):
        try:
            steps[name] = build(images, labels)
        except Exception as error:  # noqa: BLE001  (a peer that does not import or run is reported, not fatal)
            print(f"{name}: skipped ({type(error).__name__}: {error})")
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():
        step()                                            # warm-up
    for _ in range(ARGS.trials):
        for name, step in steps.items():
            times[name] += timed_turn(step, 1)            # settled first: see harness.py
    medians = {name: statistics.median(samples) for name, samples in times.items()}
    reference = next((value for name, value in medians.items() if name.startswith("PyTorch")), None)
    print(f"\narticle CNN training step, batch {BATCH}, float32, {THREADS} thread(s), median of {ARGS.trials} "
          f"trials in turn\n{'library':<22} {'ms':>9} {'/ PyTorch':>10}")
    for name, value in medians.items():
        ratio = "n/a" if reference is None else f"{value / reference:.2f}"
        print(f"{name:<22} {value:9.1f} {ratio:>10}")


if __name__ == "__main__":
    main()
