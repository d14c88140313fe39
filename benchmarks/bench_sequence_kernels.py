"""Sequence models on the CPU: tinydl (NumPy) against PyTorch, same weights, same threads, one process.

    python benchmarks/bench_sequence_kernels.py [--quick] [--threads N] [--trials N] [--match TEXT] [--clock cpu]

Rows of ``ratio  tinydl ms  torch ms`` (ratio = tinydl / torch, medians of interleaved trials; see harness.py):

forward + backward of the kernels of issue 4, item 5c: ``scaled_dot_product_attention`` at batch 32, 4 heads,
sequence 128, head dim 32, causal; ``lstm_cell`` at batch 32, input 128, hidden 256; a whole fused LSTM
layer (``lstm_layer``: the input projection and 100 steps, as ``nn.LSTM`` runs it) against ``torch.nn.LSTM``'s
(one layer, the same weights); and whole GRU and Elman
(tanh) layers, 100 steps, input 128, hidden 256, against ``torch.nn.GRU``/``torch.nn.RNN`` with the same weights,
both with tinydl's fused sequence kernels and with the composed step-by-step path (``layer.fused = False``);
and the exact GELU and layer_norm at their shapes in the GPT step of bench_sequence_models.py.
The training steps of items 5a and 5b are in bench_sequence_models.py.
"""
from __future__ import annotations

import argparse
from typing import Callable

from harness import HEADER, compare, set_clock, set_threads, torch_or_none


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few trials: a smoke run, not a measurement")
    parser.add_argument("--threads", type=int, help="threads for NumPy's BLAS and PyTorch (default: all cores)")
    parser.add_argument("--trials", type=int, help="timed trials per row (default: 15, or 2 with --quick)")
    parser.add_argument("--match", metavar="TEXT", help="only the rows whose name contains TEXT (e.g. gelu)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time by the wall clock (default) or by CPU time (steadier on a shared machine, with "
                             "one thread)")
    return parser.parse_args()


ARGS = parse_arguments()
THREADS = set_threads(ARGS.threads)  # before NumPy is imported: its BLAS reads the thread count once
set_clock(ARGS.clock)

import numpy as np  # noqa: E402

import tinydl  # noqa: E402
import tinydl.functional as F  # noqa: E402

BATCH = 32
LSTM_INPUT, LSTM_HIDDEN, LSTM_STEPS = 128, 256, 100
HEADS, CONTEXT, HEAD_DIM = 4, 128, 32


# -------------------------------------------------------------------------------------------------- kernels
def _forward_backward(library, op: Callable, arrays: list[np.ndarray], grads: int) -> Callable[[], None]:
    """op(*inputs), then backward of (output * a fixed random upstream gradient); the first ``grads`` inputs
    require gradients."""
    inputs = [library.tensor(a, requires_grad=k < grads) for k, a in enumerate(arrays)]
    upstream = None

    def run() -> None:
        nonlocal upstream
        outputs = op(*inputs)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        if upstream is None:
            upstream = [library.tensor(np.random.default_rng(1).standard_normal(o.shape).astype(np.float32))
                        for o in outputs]
        sum((o * u).sum() for o, u in zip(outputs, upstream)).backward()
        for tensor in inputs:
            tensor.grad = None
    return run


def kernel_cases(torch, rng: np.random.Generator) -> list[tuple[str, Callable, Callable | None]]:
    def array(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    attention = [array(BATCH, HEADS, CONTEXT, HEAD_DIM) for _ in range(3)]
    cell = [array(BATCH, LSTM_INPUT), array(BATCH, LSTM_HIDDEN), array(BATCH, LSTM_HIDDEN),
            array(4 * LSTM_HIDDEN, LSTM_INPUT, scale=0.06), array(4 * LSTM_HIDDEN, LSTM_HIDDEN, scale=0.06),
            array(4 * LSTM_HIDDEN, scale=0.06), array(4 * LSTM_HIDDEN, scale=0.06)]
    sequence = [array(LSTM_STEPS, BATCH, LSTM_INPUT), array(4 * LSTM_HIDDEN, LSTM_INPUT, scale=0.06),
                array(4 * LSTM_HIDDEN, LSTM_HIDDEN, scale=0.06), array(4 * LSTM_HIDDEN, scale=0.06)]
    zeros = np.zeros((BATCH, LSTM_HIDDEN), np.float32)

    def ours_sequence(x, w_ih, w_hh, b):
        return F.lstm_layer(x, (tinydl.tensor(zeros), tinydl.tensor(zeros)), w_ih, w_hh, b)[0]

    cases = [
        (f"sdpa {BATCH}x{HEADS}x{CONTEXT}x{HEAD_DIM} causal fwd+bwd",
         _forward_backward(tinydl, lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                           attention, 3),
         None if torch is None else _forward_backward(
             torch, lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True),
             attention, 3)),
        (f"lstm_cell {BATCH}x{LSTM_INPUT}->{LSTM_HIDDEN} fwd+bwd",
         _forward_backward(tinydl, lambda x, h, c, *w: F.lstm_cell(x, (h, c), *w), cell, 7),
         None if torch is None else _forward_backward(torch, lambda x, h, c, *w: torch.lstm_cell(x, (h, c), *w),
                                                      cell, 7)),
        (f"LSTM layer {LSTM_STEPS} steps fwd+bwd",
         _forward_backward(tinydl, ours_sequence, sequence, 4),
         None if torch is None else _forward_backward(torch, _torch_sequence(torch), sequence, 4)),
    ]
    for kind in ("GRU", "RNN"):
        cases += _layer_cases(torch, kind, array(LSTM_STEPS, BATCH, LSTM_INPUT))
    return cases + _transformer_cases(torch, array)


def _transformer_cases(torch, array: Callable) -> list[tuple[str, Callable, Callable | None]]:
    """The exact GELU and layer_norm (with weight and bias) at their shapes in the examples' GPT step (batch 32,
    sequence 128, width 128, feed-forward 512)."""
    width = HEADS * HEAD_DIM
    features = array(BATCH, CONTEXT, 4 * width)
    normalized = [array(BATCH, CONTEXT, width, scale=3.0), array(width), array(width)]
    cases = [(f"gelu {BATCH}x{CONTEXT}x{4 * width} fwd+bwd", F.gelu,
              None if torch is None else torch.nn.functional.gelu, [features]),
             (f"layer_norm {BATCH}x{CONTEXT}x{width} (affine) fwd+bwd", lambda x, w, b: F.layer_norm(x, width, w, b),
              None if torch is None else lambda x, w, b: torch.nn.functional.layer_norm(x, (width,), w, b),
              normalized)]
    return [(name, _forward_backward(tinydl, ours, arrays, len(arrays)),
             None if theirs is None else _forward_backward(torch, theirs, arrays, len(arrays)))
            for name, ours, theirs, arrays in cases]


def _layer_cases(torch, kind: str, x: np.ndarray) -> list[tuple[str, Callable, Callable | None]]:
    """A whole recurrent layer, forward and backward, tinydl fused and composed against PyTorch's layer (same
    weights, copied from tinydl's)."""
    ours = getattr(tinydl.nn, kind)(LSTM_INPUT, LSTM_HIDDEN)
    peer = None
    if torch is not None:
        theirs = getattr(torch.nn, kind)(LSTM_INPUT, LSTM_HIDDEN)
        with torch.no_grad():
            for name, parameter in ours.named_parameters():
                getattr(theirs, name).copy_(torch.from_numpy(parameter.data))
        peer = _forward_backward(torch, lambda x: theirs(x)[0], [x], 1)

    def run(fused: bool) -> Callable[[], None]:
        def layer(x):
            ours.fused = fused
            return ours(x)[0]
        return _forward_backward(tinydl, layer, [x], 1)
    return [(f"{kind} layer {LSTM_STEPS} steps fwd+bwd (fused)", run(True), peer),
            (f"{kind} layer {LSTM_STEPS} steps fwd+bwd (composed)", run(False), peer)]


def _torch_sequence(torch) -> Callable:
    """torch.nn.LSTM's own recurrence with given weights (both biases in b_ih, b_hh = 0)."""
    def run(x, w_ih, w_hh, b):
        zeros = torch.zeros(1, BATCH, LSTM_HIDDEN)
        return torch._VF.lstm(x, (zeros, zeros), [w_ih, w_hh, b, torch.zeros_like(b)], True, 1, 0.0, True,
                              False, False)[0]
    return run


def main() -> None:
    torch = torch_or_none()
    trials = ARGS.trials or (2 if ARGS.quick else 15)
    warmup = 1 if ARGS.quick else 2
    rng = np.random.default_rng(0)
    tinydl.manual_seed(0)
    versions = f"numpy {np.__version__}" + ("" if torch is None else f", torch {torch.__version__}")
    print(f"sequence models, float32, {THREADS} thread(s), {trials} interleaved trials per row ({versions})\n")
    print(HEADER)
    for name, ours, peer in kernel_cases(torch, rng):
        if ARGS.match is None or ARGS.match in name:
            print(compare(name, ours, peer, trials=trials, warmup=warmup).row(), flush=True)

if __name__ == "__main__":
    main()
