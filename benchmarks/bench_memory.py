"""Peak memory that training adds over the model's own: tinydl against PyTorch, each in its own process.

    python benchmarks/bench_memory.py [--steps N] [--threads N] [--only cnn|lstm|transformer] [--quick]

For each model (the article's CIFAR-10 CNN at batch 64, the char-LSTM and the GPT of bench_sequence_models.py at
batch 32) and each framework, a fresh Python process builds the model, its Adam optimizer and one batch, records
its resident memory (RSS), resets the kernel's peak-RSS counter (``/proc/self/clear_refs``), runs N training steps
(forward, loss, backward, Adam) and reads the peak (``VmHWM``). "added" is the peak minus the RSS before the steps:
the activations saved for backward, the gradients, Adam's two moments, and every temporary the libraries
allocate. Each framework runs alone, so neither pays for the other's allocations.

For tinydl the child also reports the bytes that the graph of one step keeps alive for backward (the arrays of
non-leaf inputs and the arrays Functions store, each buffer counted once) just before ``backward()``.
Linux only (it reads /proc).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODELS = ("cnn", "lstm", "transformer")
VOCAB = 65


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="training steps per process (default: 3)")
    parser.add_argument("--threads", type=int, default=2, help="BLAS / PyTorch threads (default: 2)")
    parser.add_argument("--only", choices=MODELS, help="one model only")
    parser.add_argument("--quick", action="store_true", help="one step per process: a smoke run")
    parser.add_argument("--child", nargs=2, metavar=("FRAMEWORK", "MODEL"), help=argparse.SUPPRESS)
    return parser.parse_args()


# ------------------------------------------------------------------------------------------- in the child
def memory_kib(field: str) -> int:
    """A field of /proc/self/status (VmRSS, VmHWM) in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"bench_memory: no {field} in /proc/self/status")


def reset_peak() -> None:
    """Set the peak RSS (VmHWM) to the current RSS (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def saved_bytes(loss: Any) -> int:
    """Bytes the graph under ``loss`` keeps for backward: arrays of non-leaf inputs and array attributes of the
    Functions, each underlying buffer once (views are followed to the array that owns the memory)."""
    import numpy as np

    def owner(array: Any) -> Any:
        while isinstance(array.base, np.ndarray):
            array = array.base
        return array

    buffers: dict[int, int] = {}
    pending, seen = [loss._creator], set()
    while pending:
        function = pending.pop()
        if function is None or id(function) in seen:
            continue
        seen.add(id(function))
        arrays = [value for value in vars(function).values() if isinstance(value, np.ndarray)]
        for tensor in getattr(function, "inputs", ()):
            if tensor._creator is not None:
                arrays.append(tensor.data)
                pending.append(tensor._creator)
        for array in arrays:
            root = owner(array)
            buffers[id(root)] = root.nbytes
    return sum(buffers.values())


def tinydl_step(model_name: str) -> tuple[Callable[[], Any], Callable[[Any], None], int]:
    """(forward -> loss, backward-and-update, parameter bytes) for tinydl."""
    import numpy as np

    import tinydl
    import tinydl.functional as F
    from tinydl import optim
    sys.path.insert(0, str(ROOT / "examples"))
    rng = np.random.default_rng(0)
    tinydl.manual_seed(0)
    if model_name == "cnn":
        from cnn_cifar10 import Net
        model = Net()
        x = tinydl.tensor(rng.standard_normal((64, 3, 32, 32), dtype=np.float32))
        y = tinydl.tensor(rng.integers(0, 10, 64))
        forward = lambda: F.cross_entropy(model(x), y)  # noqa: E731
    else:
        ids, length = language_model_batch(rng, model_name)
        inputs, targets = tinydl.tensor(ids[:, :length]), tinydl.tensor(ids[:, 1:].reshape(-1))
        if model_name == "lstm":
            import char_rnn
            model = char_rnn.CharRNN(VOCAB, "lstm", char_rnn.Recipe())
            forward = lambda: F.cross_entropy(model(inputs)[0].reshape(-1, VOCAB), targets)  # noqa: E731
        else:
            import gpt_char
            model = gpt_char.GPT(VOCAB, gpt_char.Recipe())
            forward = lambda: F.cross_entropy(model(inputs).reshape(-1, VOCAB), targets)  # noqa: E731
    optimizer = optim.Adam(model.parameters(), lr=1e-3)

    def update(loss: Any) -> None:
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return forward, update, sum(p.data.nbytes for p in model.parameters())


def torch_step(model_name: str) -> tuple[Callable[[], Any], Callable[[Any], None], int]:
    """The same for PyTorch, with the examples' PyTorch twins."""
    import numpy as np
    import torch
    sys.path.insert(0, str(ROOT / "examples"))
    sys.path.insert(0, str(ROOT / "examples" / "torch_reference"))
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    cross_entropy = torch.nn.functional.cross_entropy
    if model_name == "cnn":
        from cnn_cifar10_torch import TorchNet
        model = TorchNet()
        x = torch.from_numpy(rng.standard_normal((64, 3, 32, 32), dtype=np.float32))
        y = torch.from_numpy(rng.integers(0, 10, 64))
        forward = lambda: cross_entropy(model(x), y)  # noqa: E731
    else:
        ids, length = language_model_batch(rng, model_name)
        inputs, targets = torch.from_numpy(ids[:, :length]), torch.from_numpy(ids[:, 1:].reshape(-1))
        if model_name == "lstm":
            import char_rnn
            import char_rnn_torch
            model = char_rnn_torch.CharRNN(VOCAB, "lstm", char_rnn.Recipe())
            forward = lambda: cross_entropy(model(inputs)[0].reshape(-1, VOCAB), targets)  # noqa: E731
        else:
            import gpt_char
            import gpt_char_torch
            model = gpt_char_torch.GPT(VOCAB, gpt_char.Recipe())
            forward = lambda: cross_entropy(model(inputs).reshape(-1, VOCAB), targets)  # noqa: E731
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def update(loss: Any) -> None:
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return forward, update, sum(p.numel() * p.element_size() for p in model.parameters())


def language_model_batch(rng: Any, model_name: str) -> tuple[Any, int]:
    """Ids (32, length + 1) over 65 symbols: length 100 for the LSTM, 128 for the GPT."""
    length = 100 if model_name == "lstm" else 128
    return rng.integers(1, VOCAB, (32, length + 1)), length


def child(framework: str, model_name: str, steps: int) -> None:
    forward, update, parameter_bytes = (tinydl_step if framework == "tinydl" else torch_step)(model_name)
    gc.collect()
    before = memory_kib("VmRSS")
    reset_peak()
    saved = None
    for step in range(steps):
        loss = forward()
        if framework == "tinydl" and step == steps - 1:
            saved = saved_bytes(loss)
        update(loss)
        del loss
    peak = memory_kib("VmHWM")
    print(json.dumps({"rss_before_mib": before / 1024, "added_mib": (peak - before) / 1024,
                      "parameters_mib": parameter_bytes / 2**20,
                      "saved_mib": None if saved is None else saved / 2**20}))


# ------------------------------------------------------------------------------------------ in the parent
def measure(framework: str, model_name: str, arguments: argparse.Namespace) -> dict | None:
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                                            os.environ.get("PYTHONPATH")])))
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        environment[variable] = str(arguments.threads)
    done = subprocess.run([sys.executable, __file__, "--steps", str(arguments.steps), "--child", framework,
                           model_name], env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        if framework == "torch" and "No module named 'torch'" in done.stderr:
            return None
        raise RuntimeError(f"bench_memory: the {framework} {model_name} process failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    arguments = parse_arguments()
    if arguments.quick:
        arguments.steps = 1
    if arguments.child:
        child(*arguments.child, arguments.steps)
        return
    print(f"peak RSS added by {arguments.steps} training steps over the model's own, each framework in its own "
          f"process, {arguments.threads} thread(s), MiB\n")
    print(f"{'model':<12} {'params':>7} {'tinydl added':>13} {'torch added':>12} {'ratio':>6} "
          f"{'tinydl saved for backward':>26}")
    for model_name in [arguments.only] if arguments.only else MODELS:
        ours, theirs = measure("tinydl", model_name, arguments), measure("torch", model_name, arguments)
        ratio = "n/a" if theirs is None else f"{ours['added_mib'] / theirs['added_mib']:.2f}"
        peer = "n/a" if theirs is None else f"{theirs['added_mib']:.1f}"
        print(f"{model_name:<12} {ours['parameters_mib']:7.1f} {ours['added_mib']:13.1f} {peer:>12} {ratio:>6} "
              f"{ours['saved_mib']:26.1f}", flush=True)


if __name__ == "__main__":
    main()
