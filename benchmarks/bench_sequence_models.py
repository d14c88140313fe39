"""The language models of the examples on the CPU: tinydl (NumPy) against PyTorch, same weights, same threads,
one process, and where tinydl's time goes.

    python benchmarks/bench_sequence_models.py [--quick] [--threads N] [--trials N] [--profile STEPS]

The models are the examples' own (examples/char_rnn.py and examples/gpt_char.py, and their PyTorch twins in
examples/torch_reference/), at the sizes of issue 4, item 5, over a vocabulary of 65 characters:

(a) ``CharRNN``: embedding 65 -> 128, one LSTM layer of 256, Linear to 65; sequence 100, batch 32;
(b) ``GPT``: token and learned position embeddings of 128, 4 pre-norm causal encoder layers (4 heads,
    feed-forward 512, GELU, no dropout), final LayerNorm, Linear to 65; sequence 128, batch 32.

One training step = forward, cross-entropy over every position, backward, Adam update (no gradient clipping).
The PyTorch twin gets a copy of tinydl's initial weights (the state-dict names are PyTorch's), and the first
losses of the two are printed side by side as a check. Rows: ``ratio  tinydl ms  torch ms`` (ratio = tinydl /
torch, medians of interleaved trials; see harness.py). Targets: ratio <= 1.5 for (a), <= 1.3 for (b).

``--profile STEPS`` then runs STEPS more tinydl steps of each model with every op timed: the forward of each
Function (split into the forward pass and the ops that backward formulas call), the body of each backward
method (excluding the ops it calls, which are counted under their own name), the optimizer, and the rest of the
step (graph bookkeeping and Python), each in ms per step. With ``--profile-by faults`` the same profile counts
minor page faults (``ru_minflt``) instead of time: each fault is a page of a fresh array that the kernel maps and
zeroes (about 2.9 us each on the development machine), which is how the char-LSTM's 5,559 faults per step were
found in the fifth session.
"""
from __future__ import annotations

import argparse
import collections
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

from harness import HEADER, compare, set_clock, set_threads, torch_or_none


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few trials: a smoke run, not a measurement")
    parser.add_argument("--threads", type=int, help="threads for NumPy's BLAS and PyTorch (default: all cores)")
    parser.add_argument("--trials", type=int, help="timed trials per row (default: 15, or 2 with --quick)")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="afterwards, time every op of STEPS tinydl steps per model (default: 0, no profile)")
    parser.add_argument("--profile-by", choices=("time", "faults"), default="time",
                        help="what the profile counts per op: time (default) or minor page faults")
    parser.add_argument("--only", choices=("a", "b"), help="one model only")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time by the wall clock (default) or by CPU time (steadier on a shared machine, with "
                             "--threads 1)")
    return parser.parse_args()


ARGS = parse_arguments()
THREADS = set_threads(ARGS.threads)  # before NumPy is imported: its BLAS reads the thread count once
set_clock(ARGS.clock)

import numpy as np  # noqa: E402

import tinydl  # noqa: E402
import tinydl.functional as F  # noqa: E402
from tinydl import autograd, optim  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path[:0] = [str(EXAMPLES), str(EXAMPLES / "torch_reference")]
import char_rnn  # noqa: E402
import gpt_char  # noqa: E402

VOCAB, BATCH = 65, 32
MODELS = {  # name: (tinydl model, the module of its PyTorch twin, sequence length, target ratio)
    "a": ("(a) char LSTM step (seq 100, batch 32)",
          lambda: char_rnn.CharRNN(VOCAB, "lstm", char_rnn.Recipe()), "char_rnn_torch", char_rnn.Recipe().seq_len,
          1.5),
    "b": ("(b) GPT step (seq 128, batch 32)",
          lambda: gpt_char.GPT(VOCAB, gpt_char.Recipe()), "gpt_char_torch", gpt_char.Recipe().context, 1.3),
}


def logits_of(output: Any) -> Any:
    """The logits of a model's output: CharRNN returns (logits, state), GPT the logits."""
    return output[0] if isinstance(output, tuple) else output


def training_steps(torch, model: Any, twin_module: str, length: int, rng: np.random.Generator
                   ) -> tuple[Callable[[], float], Callable[[], float] | None]:
    """One Adam step of each library on the same batch of ids, from the same initial weights; each returns its
    loss."""
    ids = rng.integers(1, VOCAB, (BATCH, length + 1))
    inputs, targets = tinydl.tensor(ids[:, :-1]), tinydl.tensor(ids[:, 1:].reshape(-1))
    optimizer = optim.Adam(model.parameters(), lr=1e-3)

    def ours() -> float:
        loss = F.cross_entropy(logits_of(model(inputs)).reshape(-1, VOCAB), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    if torch is None:
        return ours, None
    twin = __import__(twin_module)
    peer = twin.CharRNN(VOCAB, "lstm", char_rnn.Recipe()) if twin_module == "char_rnn_torch" \
        else twin.GPT(VOCAB, gpt_char.Recipe())
    peer.load_state_dict({name: torch.from_numpy(value.numpy().copy()) for name, value in
                          model.state_dict().items()}, strict=True)
    peer_optimizer = torch.optim.Adam(peer.parameters(), lr=1e-3)
    peer_inputs, peer_targets = torch.from_numpy(ids[:, :-1]), torch.from_numpy(ids[:, 1:].reshape(-1))

    def theirs() -> float:
        loss = torch.nn.functional.cross_entropy(logits_of(peer(peer_inputs)).reshape(-1, VOCAB), peer_targets)
        peer_optimizer.zero_grad()
        loss.backward()
        peer_optimizer.step()
        return loss.item()

    return ours, theirs


# ---------------------------------------------------------------------------------------------- the op profile
class OpProfile:
    """Exclusive time per label: a stack of open timers, each charging its elapsed time minus its children's."""

    def __init__(self, counter: Callable[[], float] = time.perf_counter) -> None:
        self.counter = counter                 # time.perf_counter, or minor_faults
        self.totals: dict[str, float] = collections.defaultdict(float)
        self.calls: dict[str, int] = collections.defaultdict(int)
        self.stack: list[list[Any]] = []      # [label, start, time spent in children]
        self.in_backward = False

    def timed(self, label: str, function: Callable, *args: Any, **kwargs: Any) -> Any:
        self.stack.append([label, self.counter(), 0.0])
        try:
            return function(*args, **kwargs)
        finally:
            label, start, children = self.stack.pop()
            elapsed = self.counter() - start
            self.totals[label] += elapsed - children
            self.calls[label] += 1
            if self.stack:
                self.stack[-1][2] += elapsed


def all_functions(base: type) -> list[type]:
    found, pending = [], [base]
    while pending:
        for subclass in pending.pop().__subclasses__():
            found.append(subclass)
            pending.append(subclass)
    return found


def instrument(profile: OpProfile) -> Callable[[], None]:
    """Route Function calls, backward methods, the backward pass and Adam through ``profile``; returns the undo."""
    originals: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, replacement: Any) -> None:
        originals.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, replacement)

    call = autograd.Function.__call__

    def timed_call(function: autograd.Function, *inputs: Any) -> Any:
        phase = "in backward" if profile.in_backward else "forward"
        return profile.timed(f"{function.name} ({phase})", call, function, *inputs)
    patch(autograd.Function, "__call__", timed_call)

    for cls in all_functions(autograd.Function):
        if "backward" in cls.__dict__:
            def timed_backward(function, *grads, _original=cls.__dict__["backward"]):
                return profile.timed(f"{function.name} backward body", _original, function, *grads)
            patch(cls, "backward", timed_backward)

    engine = autograd.backward

    def timed_engine(*args: Any, **kwargs: Any) -> Any:
        profile.in_backward = True
        try:
            return profile.timed("backward engine (bookkeeping)", engine, *args, **kwargs)
        finally:
            profile.in_backward = False
    patch(autograd, "backward", timed_engine)

    step = optim.Optimizer.step

    def timed_step(optimizer: optim.Optimizer, *args: Any) -> Any:
        return profile.timed("optimizer step (Adam)", step, optimizer, *args)
    patch(optim.Optimizer, "step", timed_step)

    def undo() -> None:
        for owner, name, original in reversed(originals):
            setattr(owner, name, original)
    return undo


def minor_faults() -> float:
    """The minor page faults of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


MEASURES = {"time": (time.perf_counter, 1000, "ms"), "faults": (minor_faults, 1, "faults")}  # counter, scale, unit


def profile_steps(name: str, ours: Callable[[], float], steps: int, measure: str = "time") -> None:
    counter, scale, unit = MEASURES[measure]
    profile = OpProfile(counter)
    undo = instrument(profile)
    try:
        start = counter()
        for _ in range(steps):
            profile.timed("rest of the step (Python, graph building)", ours)
        total = (counter() - start) / steps * scale
    finally:
        undo()
    print(f"\n{name}: {total:.1f} {unit} per step over {steps} profiled steps (instrumentation included)")
    print(f"  {'op':<52} {'calls':>6} {unit + '/step':>11} {'share':>6}")
    rows = sorted(profile.totals.items(), key=lambda item: -item[1])
    share = (lambda amount: f"{amount / total:6.1%}") if total else (lambda amount: f"{'':>6}")
    for label, amount in rows[:18]:
        per_step = amount / steps * scale
        print(f"  {label:<52} {profile.calls[label] / steps:6.0f} {per_step:11.2f} {share(per_step)}")
    rest = sum(amount for _, amount in rows[18:]) / steps * scale
    print(f"  {'(all other ops)':<52} {'':>6} {rest:11.2f} {share(rest)}")


def main() -> None:
    torch = torch_or_none()
    trials = ARGS.trials or (2 if ARGS.quick else 15)
    warmup = 1 if ARGS.quick else 2
    versions = f"numpy {np.__version__}" + ("" if torch is None else f", torch {torch.__version__}")
    print(f"examples' language models, float32, {THREADS} thread(s), {trials} interleaved trials per row "
          f"({versions})\n")
    chosen = [key for key in MODELS if ARGS.only in (None, key)]
    results, steps = [], {}
    for key in chosen:
        name, build, twin, length, target = MODELS[key]
        tinydl.manual_seed(0)
        ours, theirs = training_steps(torch, build(), twin, length, np.random.default_rng(0))
        if theirs is not None:
            print(f"{name}: first loss tinydl {ours():.5f}, torch {theirs():.5f} (same weights, same batch)")
        steps[key] = ours
        results.append((compare(name, ours, theirs, trials=trials, warmup=warmup), target))
    print("\n" + HEADER)
    for result, _ in results:
        print(result.row())
    for result, target in results:
        if result.ratio is not None:
            verdict = "meets" if result.ratio <= target else "misses"
            print(f"{result.name}: ratio {result.ratio:.2f}, {verdict} the target <= {target}")
    for key in chosen if ARGS.profile else ():
        profile_steps(MODELS[key][0], steps[key], ARGS.profile, ARGS.profile_by)


if __name__ == "__main__":
    main()
