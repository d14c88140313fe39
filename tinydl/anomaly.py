"""Anomaly detection: find the op, and the line of your code, where the first NaN or Inf appeared.

Inside ``with tinydl.detect_anomaly():`` (or under ``@tinydl.detect_anomaly()``) the engine does two extra things:

* every Function remembers where it was created: the call stack at that moment, trimmed to the frames outside
  tinydl (your code), so an error can point at ``train.py:42`` rather than at tinydl's internals;
* every op's result is checked. A forward whose inputs were all finite but whose output holds a NaN or an Inf,
  and a backward whose upstream gradients were all finite but which returns a NaN or Inf gradient for one of its
  inputs, raise :class:`AnomalyError`, naming the op, the direction, the shapes, and your line that created it.

Only the *first* non-finite value is reported, where it was made: an op that merely passes on a NaN it was given
is not to blame. The checks are a subscriber to the engine's op events (:mod:`tinydl.events`): outside the mode
the engine pays its one instrumentation test per op. The mode is per thread (like grad mode), so a data-loading
thread neither sees nor changes it.

For a node built while a backward runs (``create_graph=True``), the creation site is that of the node whose
backward built it, marked "in the backward of ...".
"""
from __future__ import annotations

import functools
import os
import traceback
from typing import TYPE_CHECKING, Any, Callable, Sequence

from . import events

if TYPE_CHECKING:  # pragma: no cover
    from .autograd import Function
    from .events import OpEvent

__all__ = ["detect_anomaly", "is_anomaly_enabled", "AnomalyError"]

_PACKAGE_DIRECTORY = os.path.dirname(os.path.abspath(__file__)) + os.sep


class AnomalyError(RuntimeError):
    """A NaN or Inf first appeared in this op. ``op``, ``phase`` ("forward" or "backward") and ``creation_stack``
    (the user frames that created the node, a :class:`traceback.StackSummary`) are attributes."""

    def __init__(self, message: str, op: str, phase: str, creation_stack: traceback.StackSummary):
        super().__init__(message)
        self.op, self.phase, self.creation_stack = op, phase, creation_stack


def is_anomaly_enabled() -> bool:
    """Whether anomaly detection is on in this thread."""
    return any(isinstance(s, _AnomalyWatch) for s in events.subscribers())


class _AnomalyWatch:
    """The subscriber to the engine's op events (:mod:`tinydl.events`) that does the checking."""

    wants_site = False

    def begin(self, event: "OpEvent") -> None:
        pass

    def end(self, event: "OpEvent") -> None:
        if event.phase == "backward" and event.parent is None:
            self.check_backward(event)
        else:
            self.check_forward(event)

    @staticmethod
    def check_forward(event: "OpEvent") -> None:
        """Remember where the node was created and raise if finite inputs gave a non-finite output. Ops run by a
        backward are left to the check of that backward step."""
        function = event.function
        if event.parent is not None:
            function._anomaly_stack = getattr(event.parent.function, "_anomaly_stack", None)
            function._anomaly_context = f" (in the backward of {event.parent.op})"
            return
        function._anomaly_stack = _user_stack()
        function._anomaly_context = ""
        bad = _first_non_finite(event.outputs)
        if bad is not None and _first_non_finite(event.inputs) is None:
            inputs_text = ", ".join(_describe(array) for array in event.inputs)
            _raise(function, "forward", f"{_kinds(event.outputs[bad])} in output {bad} "
                                        f"({_describe(event.outputs[bad])}) from finite inputs ({inputs_text})")

    @staticmethod
    def check_backward(event: "OpEvent") -> None:
        """Raise if finite upstream gradients gave a non-finite input gradient."""
        grads, upstream = event.outputs, event.inputs
        bad = _first_non_finite(grads)
        if bad is not None and _first_non_finite(upstream) is None:
            listing = ", ".join(_describe(g) for g in upstream if g is not None)
            _raise(event.function, "backward", f"{_kinds(grads[bad])} in the gradient of input {bad} "
                                               f"({_describe(grads[bad])}) from finite upstream gradients ({listing})")


class detect_anomaly:
    """Context manager and decorator: raise :class:`AnomalyError` at the first op that turns finite values into
    NaN or Inf, forward or backward, naming the line of user code that created the op. Slows every op down
    (a stack capture and a finiteness check each); use it to hunt a NaN, not to train."""

    def __init__(self) -> None:
        self._watches: list[_AnomalyWatch] = []

    def __enter__(self) -> None:
        self._watches.append(_AnomalyWatch())
        events.subscribe(self._watches[-1])

    def __exit__(self, *exc_info: object) -> None:
        events.unsubscribe(self._watches.pop())

    def __call__(self, function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with detect_anomaly():
                return function(*args, **kwargs)
        return wrapper


# ----------------------------------------------------------------------------------------------- helpers
def _user_stack() -> traceback.StackSummary:
    """The current call stack without tinydl's own frames, outermost first (source lines read lazily)."""
    frames = [(frame, line) for frame, line in traceback.walk_stack(None)
              if not frame.f_code.co_filename.startswith(_PACKAGE_DIRECTORY)]
    frames.reverse()
    return traceback.StackSummary.extract(iter(frames), lookup_lines=False)


def _is_float(array: Any) -> bool:
    return getattr(getattr(array, "dtype", None), "kind", "") in "fc"


def _first_non_finite(arrays: Sequence[Any]) -> int | None:
    """Position of the first floating array holding a NaN or an Inf (None entries are skipped), or None."""
    for position, array in enumerate(arrays):
        if array is not None and _is_float(array) and not bool(_array_module(array).isfinite(array).all()):
            return position
    return None


def _array_module(array: Any) -> Any:
    from .backend import get_array_module
    return get_array_module(array)


def _kinds(array: Any) -> str:
    """Which non-finite values an array holds: "nan", "inf", "-inf" or several of them."""
    xp = _array_module(array)
    found = [name for name, test in (("nan", xp.isnan(array)), ("inf", xp.isposinf(array)),
                                     ("-inf", xp.isneginf(array))) if bool(test.any())]
    return "/".join(found)


def _describe(array: Any) -> str:
    return f"shape {tuple(array.shape)} {array.dtype}"


def _raise(function: "Function", phase: str, what: str) -> None:
    stack = getattr(function, "_anomaly_stack", None)
    if stack:
        site = stack[-1]
        where = f"the {function.name} node was created at {site.filename}:{site.lineno}"
        listing = "".join(stack.format()[-4:]).rstrip()
    else:
        where = (f"the {function.name} node was created outside detect_anomaly, so where is unknown: run the "
                 "forward pass inside the mode too")
        listing = ""
    context = getattr(function, "_anomaly_context", "")
    message = f"detect_anomaly: the {phase} of {function.name}{context} produced {what}; {where}"
    if listing:
        message += f"\nwhere it was created (innermost last):\n{listing}"
    raise AnomalyError(message, function.name, phase, stack or traceback.StackSummary())
