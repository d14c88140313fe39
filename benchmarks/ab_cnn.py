"""The article CNN's training step in this tree against another one and PyTorch, all in one process, interleaved.

    git worktree add /tmp/base main          # or: mkdir /tmp/base && git archive main | tar -x -C /tmp/base
    python benchmarks/ab_cnn.py /tmp/base [--trials 8] [--threads 2]

On the 2-core development machine the step's time drifts by 20-40% between runs a minute apart (every kernel,
the matrix products included, slows down together), far more than a kernel change moves it. So the two engines
are copied into a temporary folder as ``tinydl_base`` and ``tinydl_new`` (the package imports itself only
relatively), imported side by side, and timed in rotating turns with PyTorch's step, each on the same batch from
the same weights (batch 64, Adam, the model of examples/cnn_cifar10.py). Each turn is settled first, as in
harness.py (the previous side's idle threads would otherwise hold a core), then times a few steps. Printed: the
median step time of each, and the medians of the per-round ratios new/base, new/torch and base/torch (each ratio
taken between turns a second or two apart, so a drift of the machine cancels).
"""
from __future__ import annotations

import argparse
import gc
import pathlib
import shutil
import statistics
import sys
import tempfile
from typing import Any, Callable

from article_cnn import article_cnn, training_step
from harness import TRIALS_PER_TURN, set_threads, timed_turn


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", type=pathlib.Path, help="a checkout holding the tinydl/ package to compare with")
    parser.add_argument("--trials", type=int, default=8, help="rounds of (base, new, torch) turns")
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args()


ARGS = parse_arguments()
set_threads(ARGS.threads)

import numpy as np  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
BATCH = 64


def tinydl_step(library: Any, weights: dict[str, np.ndarray], images: np.ndarray, labels: np.ndarray) -> Callable:
    model = article_cnn(library.nn)
    model.load_state_dict({key: library.tensor(value) for key, value in weights.items()})
    return training_step(model, library.optim.Adam(model.parameters(), lr=1e-3), library.functional.cross_entropy,
                         library.tensor(images), library.tensor(labels))


def torch_step(torch: Any, weights: dict[str, np.ndarray], images: np.ndarray, labels: np.ndarray) -> Callable:
    model = article_cnn(torch.nn)
    model.load_state_dict({key: torch.from_numpy(value.copy()) for key, value in weights.items()})
    return training_step(model, torch.optim.Adam(model.parameters(), lr=1e-3), torch.nn.functional.cross_entropy,
                         torch.from_numpy(images), torch.from_numpy(labels))


def main() -> None:
    import torch
    torch.manual_seed(0)
    weights = {key: value.detach().numpy().copy() for key, value in article_cnn(torch.nn).state_dict().items()}
    rng = np.random.default_rng(0)
    images = rng.standard_normal((BATCH, 3, 32, 32), dtype=np.float32)
    labels = rng.integers(0, 10, BATCH)
    with tempfile.TemporaryDirectory() as folder:
        shutil.copytree(ARGS.base / "tinydl", pathlib.Path(folder) / "tinydl_base")
        shutil.copytree(HERE.parent / "tinydl", pathlib.Path(folder) / "tinydl_new")
        sys.path.insert(0, folder)
        import tinydl_base
        import tinydl_new
        steps = {"base": tinydl_step(tinydl_base, weights, images, labels),
                 "new": tinydl_step(tinydl_new, weights, images, labels),
                 "torch": torch_step(torch, weights, images, labels)}
        for step in steps.values():
            step(), step()
        gc.collect()
        gc.freeze()
        times: dict[str, list[float]] = {name: [] for name in steps}
        order = list(steps)
        for trial in range(ARGS.trials):
            for name in order[trial % 3:] + order[:trial % 3]:
                times[name].append(statistics.median(timed_turn(steps[name], TRIALS_PER_TURN)))
    print(f"article CNN step, batch {BATCH}, {ARGS.threads} thread(s), {ARGS.trials} rounds of "
          f"{TRIALS_PER_TURN} steps: "
          + ", ".join(f"{name} {statistics.median(values):.1f} ms" for name, values in times.items()))
    for top, bottom in (("new", "base"), ("new", "torch"), ("base", "torch")):
        ratios = [a / b for a, b in zip(times[top], times[bottom])]
        print(f"  {top}/{bottom}: median of per-round ratios {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
