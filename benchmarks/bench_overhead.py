"""Per-op overhead of the engine: a chain of 10,000 small elementwise ops, forward and backward.

    python benchmarks/bench_overhead.py [--ops 10000] [--size 16] [--trials 7] [--quick]

Each link is ``y = y * a + b`` followed by ``tanh`` (three ops) on a vector of ``size`` floats, so the time is
almost all bookkeeping: creating tensors and graph nodes, and walking the graph backward. The result is reported
per op, for tinydl and PyTorch in the same process, and as a ratio.
"""
from __future__ import annotations

import argparse

from harness import HEADER, compare, set_threads, torch_or_none

set_threads(1)  # the vectors are tiny: overhead, not arithmetic, is measured

import numpy as np  # noqa: E402

import tinydl  # noqa: E402


def chain(module, x, a, b, links: int):
    y = x
    for _ in range(links):
        y = module.tanh(y * a + b)
    return y.sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=10_000, help="ops in the chain (default 10000)")
    parser.add_argument("--size", type=int, default=16, help="elements per tensor (default 16)")
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a 999-op chain, one trial: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.ops, args.trials = 999, 1
    links = args.ops // 3
    rng = np.random.default_rng(0)
    x0, a0, b0 = (rng.standard_normal(args.size).astype(np.float32) * 0.1 for _ in range(3))

    x, a, b = (tinydl.tensor(v, requires_grad=True) for v in (x0, a0, b0))

    def ours():
        chain(tinydl, x, a, b, links).backward()

    torch = torch_or_none()
    peer = None
    if torch is not None:
        tx, ta, tb = (torch.tensor(v, requires_grad=True) for v in (x0, a0, b0))

        def peer():
            chain(torch, tx, ta, tb, links).backward()

    result = compare(f"chain of {3 * links} ops fwd+bwd (per op, us)", ours, peer, trials=args.trials, warmup=1)
    ops = 3 * links
    print(HEADER.replace("ms", "us"))
    result.ours_ms, result.peer_ms = result.ours_ms * 1000 / ops, (
        None if result.peer_ms is None else result.peer_ms * 1000 / ops)
    print(result.row())


if __name__ == "__main__":
    main()
