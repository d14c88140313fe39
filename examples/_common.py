"""Helpers shared by the example scripts: command-line options, a progress line, checkpoints, curve plots.

Each example keeps its model and its training loop in plain sight; only the plumbing that every example would
otherwise repeat lives here.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TextIO

import tinydl
from tinydl.data.text import package_directory

CHECKPOINT_NAME = "last.tdl"


# ------------------------------------------------------------------------------------------- options
def add_training_arguments(parser: argparse.ArgumentParser, checkpoint_dir: str) -> None:
    """The options every training example shares. Hyperparameters default to None: the recipe fills them in."""
    parser.add_argument("--epochs", type=int, help="epochs to train (default: the recipe's)")
    parser.add_argument("--batch-size", type=int, help="samples per training step (default: the recipe's)")
    parser.add_argument("--lr", type=float, help="learning rate, the peak of the schedule if there is one "
                                                 "(default: the recipe's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights and the data order (default: 0)")
    parser.add_argument("--checkpoint-dir", default=checkpoint_dir,
                        help=f"where the checkpoint of the last complete epoch is kept (default: {checkpoint_dir})")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the checkpoint in --checkpoint-dir (model, optimizer, schedule and "
                             "data order included)")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of the loss and accuracy curves (matplotlib)")


def with_overrides(recipe: Any, overrides: Mapping[str, Any]) -> Any:
    """``recipe`` (a dataclass) with the values given on the command line in place of its own (None: not given)."""
    return dataclasses.replace(recipe, **{name: value for name, value in overrides.items() if value is not None})


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


# ------------------------------------------------------------------------------------------- data
MISSING_DATA_STATUS = 2  # the exit status of an example whose data is missing (argparse uses 2 for usage errors)


@contextlib.contextmanager
def data_or_exit(example: str, alternative: str) -> Iterator[None]:
    """Turn a missing dataset (``FileNotFoundError`` from a reader) into two lines on stderr and exit status 2.

    The reader's message says what is missing and the command that installs it; ``alternative`` says what else the
    user can do (another option of the example). A newcomer sees what to type, not a traceback.
    """
    try:
        yield
    except FileNotFoundError as error:
        print(f"{example}: {error}", file=sys.stderr)
        print(f"{example}: {alternative}", file=sys.stderr)
        sys.exit(MISSING_DATA_STATUS)


def installed_package(example: str, package: str, alternative: str) -> Path:
    """The folder of an installed data or weight package, found without importing it; when it is missing, two
    lines naming the install command (and ``alternative``) and exit status 2."""
    with data_or_exit(example, alternative):
        return package_directory(package, example)


# ------------------------------------------------------------------------------------------- progress
def format_duration(seconds: float) -> str:
    """``3725 -> '1:02:05'``, ``65 -> '1:05'``."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """A status line for one pass over ``total_steps`` steps: prefix, step, metrics, throughput and ETA.

    On a terminal the line is redrawn in place every ``refresh`` seconds; into a file (a log written by nohup) a
    full line is printed every ``log_interval`` seconds instead, so logs stay short and readable.
    """

    def __init__(self, prefix: str, total_steps: int, unit: str = "samples", stream: TextIO | None = None,
                 refresh: float = 0.5, log_interval: float = 30.0) -> None:
        self.prefix, self.unit = prefix, unit
        self.total_steps = total_steps
        self.stream = stream or sys.stdout
        self.interactive = self.stream.isatty()
        self.interval = refresh if self.interactive else log_interval
        self.start = time.perf_counter()
        self.last_shown = self.start

    def update(self, step: int, samples: int, metrics: Callable[[], Mapping[str, str]]) -> None:
        """Report that ``step`` steps and ``samples`` samples are done. ``metrics()`` returns the formatted
        values to show; it is called only when the line is shown (reading a GPU value waits for the GPU)."""
        now = time.perf_counter()
        if now - self.last_shown < self.interval and step < self.total_steps:
            return
        self.last_shown = now
        elapsed = max(now - self.start, 1e-9)
        eta = elapsed / step * (self.total_steps - step) if step else 0.0
        fields = " ".join(f"{name} {value}" for name, value in metrics().items())
        line = (f"{self.prefix} step {step}/{self.total_steps} {fields} {samples / elapsed:.0f} {self.unit}/s "
                f"ETA {format_duration(eta)}")
        if self.interactive:
            self.stream.write("\r" + line + "\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> float:
        """End the line (on a terminal) and return the seconds since the start."""
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()
        return time.perf_counter() - self.start


# ------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(directory: str | Path, state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``directory/last.tdl`` (atomically: a crash leaves the previous epoch's file)."""
    path = Path(directory) / CHECKPOINT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tinydl.save(dict(state), path)
    return path


def load_checkpoint(directory: str | Path, device: str | None = None) -> dict[str, Any]:
    """The state saved by :func:`save_checkpoint` in ``directory``, Tensors moved to ``device`` when given; a
    clear error when there is none."""
    path = Path(directory) / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}; train without --resume first, or point "
                                f"--checkpoint-dir at the directory of an earlier run")
    return tinydl.load(path, device=device)


def check_same_config(saved: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """Refuse to resume a run whose training configuration differs from the one in the checkpoint."""
    differences = [f"{key}: checkpoint {saved.get(key)!r}, now {current.get(key)!r}"
                   for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key)]
    if differences:
        raise ValueError("--resume: the checkpoint was written by a run with other settings; rerun with the "
                         "same options (or a fresh --checkpoint-dir). Differences: " + "; ".join(differences))


# ------------------------------------------------------------------------------------------- plots
def plot_curves(history: Mapping[str, list[float]], path: str | Path, title: str) -> bool:
    """PNG of the per-epoch curves: one panel for the ``*loss`` series, one for the ``*acc`` series.

    Returns False (after saying so) when matplotlib is not installed.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"--plot: matplotlib is not installed, no plot written to {path} (pip install matplotlib)")
        return False
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for name, values in history.items():
        axes = loss_axes if name.endswith("loss") else accuracy_axes if name.endswith("acc") else None
        if axes is not None:
            axes.plot(range(1, len(values) + 1), values, marker="o", label=name.replace("_", " "))
    for axes, label in ((loss_axes, "loss"), (accuracy_axes, "accuracy (%)")):
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True
