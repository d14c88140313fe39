"""The LSTM layer with its input projection inside (``F.lstm_layer``) against what it replaced, each in its own
process.

    python benchmarks/ab_recurrent.py [--threads 2] [--pairs 3] [--steps 20] [--quick]

The training step of the examples' char-LSTM (examples/char_rnn.py: sequence 100, batch 32, Adam), same weights
and batch: ``nn.LSTM`` as it runs now, one ``F.lstm_layer`` op, against the same layer run as before,
``F.linear`` for the projection and then ``F.lstm_sequence``.

What the change removes is page faults: fresh large arrays that glibc maps and the kernel zeroes page by page
at every step. Whether an array faults depends on the state of the process's heap (glibc's thresholds adapt to
what the process has freed), so the two paths cannot share a process: each run is a fresh child process, new and
old alternating for ``--pairs`` pairs. Each child runs 3 untimed steps, then ``--steps`` timed ones, and reports
the median ms per step and the minor page faults per step (``ru_minflt``). Printed per pair, and the ratio
new / old.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--threads", type=int, default=2, help="threads for the BLAS")
parser.add_argument("--pairs", type=int, default=3, help="new/old pairs of processes")
parser.add_argument("--steps", type=int, default=20, help="timed steps per process")
parser.add_argument("--quick", action="store_true", help="one pair of 2 steps: a smoke run")
parser.add_argument("--child", choices=("new", "old"), help=argparse.SUPPRESS)
ARGS = parser.parse_args()
VOCAB, BATCH = 65, 32


def child(path: str) -> None:
    """One process: the char-LSTM's step on the ``path`` ("new" or "old"); prints 'ms faults'."""
    from harness import set_threads
    set_threads(ARGS.threads)
    import numpy as np
    import tinydl
    import tinydl.functional as F
    from tinydl.nn import recurrent as layers
    sys.path.insert(0, str(HERE.parent / "examples"))
    import char_rnn

    if path == "old":
        def projection_then_sequence(self, input, state, weights, reverse):
            w_ih, w_hh, b_ih, b_hh = weights
            projection = layers._project(input, w_ih, None if b_ih is None else b_ih + b_hh)
            return F.lstm_sequence(projection, state, w_hh, reverse=reverse)
        layers.LSTM._run_direction = projection_then_sequence

    tinydl.manual_seed(0)
    model = char_rnn.CharRNN(VOCAB, "lstm", char_rnn.Recipe())
    ids = np.random.default_rng(0).integers(1, VOCAB, (BATCH, char_rnn.Recipe().seq_len + 1))
    inputs, targets = tinydl.tensor(ids[:, :-1]), tinydl.tensor(ids[:, 1:].reshape(-1))
    optimizer = tinydl.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        loss = F.cross_entropy(model(inputs)[0].reshape(-1, VOCAB), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    faults, times = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, []
    for _ in range(ARGS.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(f"{statistics.median(times) * 1000:.2f} {faults / ARGS.steps:.0f}")


def run_child(path: str, steps: int) -> tuple[float, float]:
    command = [sys.executable, __file__, "--threads", str(ARGS.threads), "--steps", str(steps), "--child", path]
    result = subprocess.run(command, cwd=HERE, capture_output=True, text=True, timeout=900, check=True)
    ms, faults = result.stdout.split()
    return float(ms), float(faults)


def main() -> None:
    pairs, steps = (1, 2) if ARGS.quick else (ARGS.pairs, ARGS.steps)
    print(f"{ARGS.threads} thread(s), one process per run, median ms per step and page faults per step\n")
    print(f"{'new ms':>8} {'faults':>7} {'old ms':>8} {'faults':>7} {'new/old':>8}")
    for _ in range(pairs):
        new_ms, new_faults = run_child("new", steps)
        old_ms, old_faults = run_child("old", steps)
        print(f"{new_ms:8.1f} {new_faults:7.0f} {old_ms:8.1f} {old_faults:7.0f} {new_ms / old_ms:8.2f}", flush=True)


if __name__ == "__main__":
    if ARGS.child:
        child(ARGS.child)
    else:
        main()
