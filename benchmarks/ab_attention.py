"""scaled_dot_product_attention of this tree against another one and PyTorch, in one process, interleaved.

    mkdir /tmp/base && git archive main | tar -x -C /tmp/base
    python benchmarks/ab_attention.py /tmp/base [--trials 15] [--threads 1] [--clock cpu]

Forward and backward at the GPT's shape (batch 32, 4 heads, sequence 128, head dim 32, float32, causal), with
``is_causal=True`` and with the additive (L, L) mask of examples/gpt_char.py, for Q, K, V given contiguous and as
the views of one packed (N, L, 3E) projection that MultiheadAttention takes (their split and its backward
included). Both trees are copied into a temporary folder as ``tinydl_base`` and ``tinydl_new`` (the package
imports itself only relatively) and timed trial by trial with PyTorch's ``scaled_dot_product_attention``.
Printed: the median ms of each and the ratios to PyTorch.
"""
from __future__ import annotations

import argparse
import pathlib
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

from harness import set_threads

HERE = pathlib.Path(__file__).resolve().parent
BATCH, HEADS, LENGTH, HEAD_DIM = 32, 4, 128, 32


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", type=pathlib.Path, help="a checkout holding the tinydl/ package to compare with")
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="cpu")
    return parser.parse_args()


def attention_step(library: Any, sdpa: Callable, packed: bool, causal: bool, arrays: dict[str, Any]
                   ) -> Callable[[], None]:
    """One forward and backward of attention (``sdpa``) in ``library`` (tinydl or torch) on fresh leaves."""
    embed = HEADS * HEAD_DIM

    def run() -> None:
        if packed:
            projection = library.tensor(arrays["packed"], requires_grad=True)
            q, k, v = (projection[..., i * embed:(i + 1) * embed].reshape(BATCH, LENGTH, HEADS, HEAD_DIM)
                       .transpose(1, 2) for i in range(3))
        else:
            q, k, v = (library.tensor(arrays[name], requires_grad=True) for name in "qkv")
        output = sdpa(q, k, v, is_causal=True) if causal else sdpa(q, k, v, library.tensor(arrays["mask"]))
        (output * library.tensor(arrays["upstream"])).sum().backward()
    return run


def main() -> None:
    args = parse_arguments()
    set_threads(args.threads)
    clock = {"wall": time.perf_counter, "cpu": time.process_time}[args.clock]
    import numpy as np
    import torch
    rng = np.random.default_rng(0)
    packed = rng.standard_normal((BATCH, LENGTH, 3 * HEADS * HEAD_DIM)).astype(np.float32)
    heads = packed.reshape(BATCH, LENGTH, 3, HEADS, HEAD_DIM).transpose(2, 0, 3, 1, 4)
    arrays = {"packed": packed, **{name: np.ascontiguousarray(heads[i]) for i, name in enumerate("qkv")},
              "mask": np.triu(np.full((LENGTH, LENGTH), -np.inf, np.float32), k=1),
              "upstream": rng.standard_normal((BATCH, HEADS, LENGTH, HEAD_DIM)).astype(np.float32)}
    with tempfile.TemporaryDirectory() as folder:
        shutil.copytree(args.base / "tinydl", pathlib.Path(folder) / "tinydl_base")
        shutil.copytree(HERE.parent / "tinydl", pathlib.Path(folder) / "tinydl_new")
        sys.path.insert(0, folder)
        import tinydl_base
        import tinydl_new
        print(f"attention {BATCH}x{HEADS}x{LENGTH}x{HEAD_DIM} float32 fwd+bwd, {args.threads} thread(s), "
              f"{args.clock} clock, {args.trials} interleaved trials: median ms (ratio to torch)")
        for layout in ("contiguous", "packed"):
            for causal in (True, False):
                libraries = (("base", tinydl_base, tinydl_base.functional.scaled_dot_product_attention),
                             ("new", tinydl_new, tinydl_new.functional.scaled_dot_product_attention),
                             ("torch", torch, torch.nn.functional.scaled_dot_product_attention))
                runs = {name: attention_step(library, sdpa, layout == "packed", causal, arrays)
                        for name, library, sdpa in libraries}
                for run in runs.values():
                    run(), run()
                times: dict[str, list[float]] = {name: [] for name in runs}
                for _ in range(args.trials):
                    for name, run in runs.items():
                        start = clock()
                        run()
                        times[name].append((clock() - start) * 1000)
                median = {name: statistics.median(values) for name, values in times.items()}
                mask = "is_causal" if causal else "additive mask"
                print(f"{layout:<10} {mask:<13}  base {median['base']:6.2f} ({median['base'] / median['torch']:.2f})"
                      f"  new {median['new']:6.2f} ({median['new'] / median['torch']:.2f})"
                      f"  torch {median['torch']:6.2f}", flush=True)


if __name__ == "__main__":
    main()
