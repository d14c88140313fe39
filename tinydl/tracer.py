"""The backward tracer: watch the engine walk the graph, one Function at a time.

    with tinydl.trace_backward():
        loss = model(x).sum()        # optional: run the forward inside too, to get file:line of every node
        loss.backward()

prints one line per backward step, in the order the engine runs them: the op, its module and the line of your
code that created it, the shapes and norms of the gradients that came in (one per output of the node) and of the
gradients it sent to its inputs, and where the engine had summed the contributions of several consumers into one
gradient (``b = a * a; c = b + b``: b's gradient is the sum of two). Leaves that received several contributions
are listed when the block ends.

``tinydl.step_backward(loss)`` runs the same backward one step at a time: a generator that yields each step
(a :class:`TraceStep`) and lets the engine go on only when asked for the next one, so a notebook can look at
``.grad`` of the leaves between steps.
"""
from __future__ import annotations

import queue
import sys
import threading
from collections import defaultdict
from typing import Any, Iterator, TextIO

from . import events
from .backend import get_array_module
from .events import OpEvent

__all__ = ["trace_backward", "step_backward", "TraceStep"]


class TraceStep:
    """One backward step: ``index`` (engine order), ``op``, ``op_id``, ``module_path``, ``site``,
    ``grad_outputs`` and ``grad_inputs`` (lists of ``(shape, norm)``, None for no gradient) and ``summed``
    ({output index: number of contributions summed into its gradient}, only where more than one)."""

    def __init__(self, index: int, event: OpEvent, summed: dict[int, int]):
        self.index, self.op, self.op_id = index, event.op, event.op_id
        self.module_path, self.site = event.module_path, event.site
        self.grad_outputs = [_shape_norm(g) for g in event.inputs]
        self.grad_inputs = [_shape_norm(g) for g in event.outputs]
        self.summed = summed

    def __str__(self) -> str:
        module = "-" if self.module_path is None else (self.module_path or "(model)")
        site = self.site or "?"
        line = (f"{self.index:>3}  {self.op:<16} module {module:<10} at {site}  "
                f"grad in {_listing(self.grad_outputs)} -> out {_listing(self.grad_inputs)}")
        if self.summed:
            line += "  summed: " + ", ".join(f"output {i} from {n} consumers" for i, n in sorted(self.summed.items()))
        return line

    __repr__ = __str__


def _shape_norm(array: Any) -> tuple[tuple[int, ...], float] | None:
    if array is None:
        return None
    xp = get_array_module(array)
    return tuple(array.shape), float(xp.sqrt((array.astype(xp.float64) ** 2).sum()))


def _listing(entries: list) -> str:
    return "[" + ", ".join("-" if e is None else f"{e[0]} |g|={e[1]:.4g}" for e in entries) + "]"


class _Tracer:
    """Subscriber that turns backward steps into :class:`TraceStep` s and counts gradient contributions."""

    wants_site = True

    def __init__(self) -> None:
        self.steps: list[TraceStep] = []
        self.contributions: dict[Any, int] = defaultdict(int)  # (id(node), output index) or id(leaf) -> count
        self.leaves: dict[int, Any] = {}

    def begin(self, event: OpEvent) -> None:
        pass

    def end(self, event: OpEvent) -> None:
        if event.phase != "backward" or event.parent is not None:
            return
        node = event.function
        summed = {i: self.contributions.pop((id(node), i)) for i in range(len(event.inputs))
                  if self.contributions.get((id(node), i), 0) > 1}
        for tensor, grad in zip(node.inputs, event.outputs):
            if grad is None or not tensor.requires_grad:
                continue
            creator = tensor._creator
            if creator is None:
                self.leaves[id(tensor)] = tensor
                self.contributions[id(tensor)] += 1
            else:
                self.contributions[(id(creator), tensor._index)] += 1
        step = TraceStep(len(self.steps), event, summed)
        self.steps.append(step)
        self.emit(step)

    def emit(self, step: TraceStep) -> None:
        pass

    def leaf_notes(self) -> list[str]:
        return [f"     leaf of shape {tuple(self.leaves[key].shape)}: {count} contributions summed into .grad"
                for key, count in self.contributions.items() if key in self.leaves and count > 1]


class trace_backward(_Tracer):
    """Context manager printing one line per backward step to ``file`` (default: standard output); the steps
    are kept in ``.steps`` and ``str(tracer)`` gives the whole listing."""

    def __init__(self, file: TextIO | None = None):
        super().__init__()
        self.file = file

    def __enter__(self) -> "trace_backward":
        events.subscribe(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        events.unsubscribe(self)
        for note in self.leaf_notes():
            print(note, file=self.file or sys.stdout)

    def emit(self, step: TraceStep) -> None:
        print(step, file=self.file or sys.stdout)

    def __str__(self) -> str:
        return "\n".join([str(step) for step in self.steps] + self.leaf_notes())


class _Abandoned(Exception):
    """Raised inside the engine when the consumer of :func:`step_backward` stops early."""


class _Stepper(_Tracer):
    """Hands each step over once the engine has also delivered its gradients (when the next step begins, or
    when backward ends), then waits until the consumer asks for the next one."""

    def __init__(self, handoff: "queue.Queue[Any]", resume: threading.Semaphore):
        super().__init__()
        self.handoff, self.resume, self.abandoned = handoff, resume, False
        self.pending: TraceStep | None = None

    def emit(self, step: TraceStep) -> None:
        self.pending = step

    def begin(self, event: OpEvent) -> None:
        if event.phase == "backward" and event.parent is None:
            self.flush()

    def flush(self) -> None:
        if self.pending is None:
            return
        step, self.pending = self.pending, None
        self.handoff.put(step)
        self.resume.acquire()
        if self.abandoned:
            raise _Abandoned()


_DONE = object()


def step_backward(output: Any, gradient: Any = None, retain_graph: bool = False) -> Iterator[TraceStep]:
    """Run ``output.backward(gradient, retain_graph)`` one step at a time: each ``next()`` lets the engine do one
    backward step, deliver its gradients (into ``.grad`` for leaves), and returns its :class:`TraceStep`. The
    backward runs in a helper thread that waits between steps; stopping early (``break``) abandons it, leaving
    the gradients it had accumulated so far."""
    handoff: queue.Queue[Any] = queue.Queue()
    resume = threading.Semaphore(0)
    stepper = _Stepper(handoff, resume)

    def run() -> None:
        events.subscribe(stepper)
        try:
            output.backward(gradient, retain_graph=retain_graph)
            stepper.flush()
        except _Abandoned:
            pass
        except BaseException as error:  # handed to the consumer, raised there
            handoff.put(error)
        finally:
            events.unsubscribe(stepper)
            handoff.put(_DONE)

    worker = threading.Thread(target=run, name="tinydl-step-backward", daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
            resume.release()
    finally:
        stepper.abandoned = True
        resume.release()
        worker.join()
