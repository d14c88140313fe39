"""Data-parallel training of the article's CIFAR-10 CNN: is two processes of one thread faster than one process?

    python benchmarks/bench_distributed.py [--quick] [--rounds N] [--steps N]

One training step on a global batch of 64 (forward, cross-entropy, backward, gradient averaging, Adam), float32,
timed in three set-ups, each a fresh job, launched round-robin (A, B, C, A, B, C, ...) so that the machine's load
drifts over all of them alike:

* ``1 rank x 1 thread``: one process, one BLAS thread, the whole batch;
* ``1 rank x 2 threads``: one process, two BLAS threads;
* ``2 ranks x 1 thread``: ``mpiexec -n 2``, each rank one thread and 32 images, DistributedDataParallel.

Each job times ``--steps`` steps after two warm-up steps and reports the median step; the table gives, per set-up,
the median over rounds. For the two-rank job it also gives the time in the gradient averaging (packing, MPI
Allreduce, unpacking; waiting for the slower rank included) as a fraction of the step. Targets (issue 11): 2 ranks
x 1 thread at least 1.6 times as fast per global batch as 1 rank x 1 thread, communication under 15% of the step.

The last column, the CPU time rank 0 spent per step (all its threads), hardly depends on how loaded the machine
is: on a machine shared with other jobs, where the wall-clock times mostly measure the scheduler, the ratio of
CPU times says how evenly the work splits over the ranks (2 for a perfect split; the averaging's copies and the
MPI progress loop count as work).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MPIEXEC = Path(sys.executable).parent / "mpiexec"
GLOBAL_BATCH = 64
SETUPS = {"1 rank x 1 thread": (1, 1), "1 rank x 2 threads": (1, 2), "2 ranks x 1 thread": (2, 1)}


def worker(steps: int) -> None:
    """Run inside each job: time ``steps`` training steps; rank 0 prints a JSON line."""
    import time

    import numpy as np

    import tinydl
    import tinydl.distributed as dist
    import tinydl.functional as F
    from tinydl import optim
    sys.path.insert(0, str(HERE.parent / "examples"))
    from cnn_cifar10 import Net

    tinydl.manual_seed(0)
    world = dist.world_size()
    model = dist.DistributedDataParallel(Net()) if world > 1 else Net()
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(dist.rank())
    local = GLOBAL_BATCH // world
    images = tinydl.tensor(rng.standard_normal((local, 3, 32, 32)).astype(np.float32))
    labels = tinydl.tensor(rng.integers(0, 10, local))
    step_times, cpu_times, reduce_times = [], [], []
    for step in range(steps + 2):
        reduced_before = getattr(model, "reduction_seconds", 0.0)
        start, cpu_start = time.perf_counter(), time.process_time()
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
        if step >= 2:  # two warm-up steps: first-touch allocations, BLAS start-up
            step_times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
            reduce_times.append(getattr(model, "reduction_seconds", 0.0) - reduced_before)
    if dist.is_main():
        print("RESULT " + json.dumps({"step_ms": 1000 * statistics.median(step_times),
                                      "cpu_ms": 1000 * statistics.median(cpu_times),
                                      "reduce_ms": 1000 * statistics.median(reduce_times)}), flush=True)


def run_job(ranks: int, threads: int, steps: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--steps", str(steps)]
    if ranks > 1:
        command = [str(MPIEXEC), "-n", str(ranks)] + command
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"job {ranks} x {threads} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one round of 3 steps: a smoke run")
    parser.add_argument("--rounds", type=int, help="jobs per set-up (default: 5, or 1 with --quick)")
    parser.add_argument("--steps", type=int, help="timed steps per job (default: 10, or 3 with --quick)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    steps = args.steps or (3 if args.quick else 10)
    if args.worker:
        worker(steps)
        return 0
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        print("bench_distributed: mpi4py is not installed (pip install 'tinydl[distributed]'); nothing measured")
        return 0
    rounds = args.rounds or (1 if args.quick else 5)
    results: dict[str, list[dict]] = {name: [] for name in SETUPS}
    for _ in range(rounds):
        for name, (ranks, threads) in SETUPS.items():
            results[name].append(run_job(ranks, threads, steps))
    step = {name: statistics.median(r["step_ms"] for r in runs) for name, runs in results.items()}
    cpu = {name: statistics.median(r["cpu_ms"] for r in runs) for name, runs in results.items()}
    baseline = step["1 rank x 1 thread"]
    print(f"CNN training step, global batch {GLOBAL_BATCH}, float32; medians of {rounds} jobs x {steps} steps")
    print(f"{'set-up':<22} {'ms/step':>9} {'speed-up vs 1x1':>16} {'CPU ms/step of rank 0':>22}")
    for name, milliseconds in step.items():
        print(f"{name:<22} {milliseconds:9.1f} {baseline / milliseconds:16.2f} {cpu[name]:22.1f}")
    reduce_ms = statistics.median(r["reduce_ms"] for r in results["2 ranks x 1 thread"])
    fraction = reduce_ms / step["2 ranks x 1 thread"]
    print(f"2 ranks: gradient averaging {reduce_ms:.1f} ms per step = {100 * fraction:.1f}% of the step "
          f"(target < 15%)")
    print(f"ratio (1 rank x 1 thread) / (2 ranks x 1 thread) = {baseline / step['2 ranks x 1 thread']:.2f} "
          f"(target >= 1.6); in CPU time per step: {cpu['1 rank x 1 thread'] / cpu['2 ranks x 1 thread']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
