"""Engine overhead of this tree against another one, both imported in one process and timed interleaved.

    git worktree add /tmp/base main          # or: mkdir /tmp/base && git archive main | tar -x -C /tmp/base
    python benchmarks/ab_overhead.py /tmp/base [--trials 60]

Per-op bookkeeping changes by a few percent at most, well under the drift of a shared machine between two runs,
so both engines are copied into a temporary folder as ``tinydl_base`` and ``tinydl_new`` (the package imports
itself only relatively), imported side by side and timed trial by trial in alternation. Two workloads:
bench_overhead.py's chain of small ops outside any Module, and a tiny model of 40 Module calls. Printed: the
ratio new / base of the median times, and the median of the per-trial ratios.
"""
from __future__ import annotations

import argparse
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

from harness import set_threads

set_threads(1)

import numpy as np  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent


def chain(lib):
    rng = np.random.default_rng(0)
    x, a, b = (lib.tensor(rng.standard_normal(16).astype(np.float32) * 0.1, requires_grad=True) for _ in range(3))

    def run() -> None:
        y = x
        for _ in range(1000):
            y = lib.tanh(y * a + b)
        y.sum().backward()
    return run


def tiny_model(lib):
    lib.manual_seed(0)
    layers = []
    for _ in range(20):
        layers += [lib.nn.Linear(16, 16), lib.nn.ReLU()]
    model, x = lib.nn.Sequential(*layers), lib.randn(4, 16)

    def run() -> None:
        for _ in range(20):
            model(x).sum().backward()
    return run


def interleaved(base, new, trials: int) -> tuple[float, float]:
    base(), new()
    times: dict[str, list[float]] = {"base": [], "new": []}
    for trial in range(trials):
        for name, run in ((("base", base), ("new", new)) if trial % 2 == 0 else (("new", new), ("base", base))):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    paired = [n / b for b, n in zip(times["base"], times["new"])]
    return statistics.median(times["new"]) / statistics.median(times["base"]), statistics.median(paired)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", type=pathlib.Path, help="a checkout holding the tinydl/ package to compare with")
    parser.add_argument("--trials", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        shutil.copytree(args.base / "tinydl", pathlib.Path(folder) / "tinydl_base")
        shutil.copytree(HERE.parent / "tinydl", pathlib.Path(folder) / "tinydl_new")
        sys.path.insert(0, folder)
        import tinydl_base
        import tinydl_new
        for name, workload in (("chain of 3000 ops, fwd+bwd", chain), ("tiny model, 40 module calls", tiny_model)):
            ratio, paired = interleaved(workload(tinydl_base), workload(tinydl_new), args.trials)
            print(f"{name:<30} new/base {ratio:.3f} (median of paired ratios {paired:.3f})")


if __name__ == "__main__":
    main()
