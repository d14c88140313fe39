"""Anomaly detection: find the op, and the line of your code, where the first NaN or Inf appeared.

Inside ``with tinydl.detect_anomaly():`` (or under ``@tinydl.detect_anomaly()``) the engine does two extra things:

* every Function remembers where it was created: the call stack at that moment, trimmed to the frames outside
  tinydl (your code), so an error can point at ``train.py:42`` rather than at tinydl's internals;
* every op's result is checked. A forward whose inputs were all finite but whose output holds a NaN or an Inf,
  and a backward whose upstream gradients were all finite but which returns a NaN or Inf gradient for one of its
  inputs, raise :class:`AnomalyError`, naming the op, the direction, the shapes, and your line that created it.

Only the *first* non-finite value is reported, where it was made: an op that merely passes on a NaN it was given
is not to blame. Outside the mode the engine pays one thread-local flag test per op. The mode is per thread (like
grad mode), so a data-loading thread neither sees nor changes it.

For a node built while a backward runs (``create_graph=True``), the creation site is that of the node whose
backward built it, marked "in the backward of ...".
"""
from __future__ import annotations

import functools
import os
import threading
import traceback
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from .autograd import Function
    from .tensor import Tensor

__all__ = ["detect_anomaly", "is_anomaly_enabled", "AnomalyError"]

_PACKAGE_DIRECTORY = os.path.dirname(os.path.abspath(__file__)) + os.sep


class _AnomalyState(threading.local):
    """The per-thread mode: ``enabled`` (the flag the engine tests) and, while a backward runs under the mode,
    the node whose backward is running (ops called inside a backward are checked as that backward, not alone)."""

    enabled = False
    running_backward: "Function | None" = None


_state = _AnomalyState()
# Idents of the threads that have the mode on. The engine tests this set before the thread-local flag: an empty
# set is a cheaper test than a thread-local read (about 20 ns instead of 80), and it is empty in normal runs.
active_threads: set[int] = set()


class AnomalyError(RuntimeError):
    """A NaN or Inf first appeared in this op. ``op``, ``phase`` ("forward" or "backward") and ``creation_stack``
    (the user frames that created the node, a :class:`traceback.StackSummary`) are attributes."""

    def __init__(self, message: str, op: str, phase: str, creation_stack: traceback.StackSummary):
        super().__init__(message)
        self.op, self.phase, self.creation_stack = op, phase, creation_stack


def is_anomaly_enabled() -> bool:
    """Whether anomaly detection is on in this thread."""
    return _state.enabled


class detect_anomaly:
    """Context manager and decorator: raise :class:`AnomalyError` at the first op that turns finite values into
    NaN or Inf, forward or backward, naming the line of user code that created the op. Slows every op down
    (a stack capture and a finiteness check each); use it to hunt a NaN, not to train."""

    def __init__(self) -> None:
        self._previous: list[bool] = []

    def __enter__(self) -> None:
        self._previous.append(_state.enabled)
        _state.enabled = True
        active_threads.add(threading.get_ident())

    def __exit__(self, *exc_info: object) -> None:
        _state.enabled = self._previous.pop()
        if not _state.enabled:
            active_threads.discard(threading.get_ident())

    def __call__(self, function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with detect_anomaly():
                return function(*args, **kwargs)
        return wrapper


# --------------------------------------------------------------------------------------- hooks of the engine
def forward_hook(function: "Function", inputs: Sequence[Any], result: Any) -> None:
    """Called by ``Function.__call__`` after ``forward`` while the mode is on: remember where the node was created
    and raise if finite inputs gave a non-finite output. Ops run by a backward are left to :func:`run_backward`."""
    parent = _state.running_backward
    if parent is not None:
        function._anomaly_stack = getattr(parent, "_anomaly_stack", None)
        function._anomaly_context = f" (in the backward of {parent.name})"
        return
    function._anomaly_stack = _user_stack()
    function._anomaly_context = ""
    outputs = result if type(result) is tuple else (result,)
    bad = _first_non_finite(outputs)
    if bad is not None and _first_non_finite(inputs) is None:
        inputs_text = ", ".join(_describe(array) for array in inputs)
        _raise(function, "forward", f"{_kinds(outputs[bad])} in output {bad} ({_describe(outputs[bad])}) from "
                                    f"finite inputs ({inputs_text})")


def run_backward(function: "Function", grad_outputs: Sequence["Tensor"]) -> Any:
    """Run ``function.backward`` for the engine while the mode is on, and raise if finite upstream gradients gave
    a non-finite input gradient."""
    previous, _state.running_backward = _state.running_backward, function
    try:
        input_grads = function.backward(*grad_outputs)
    finally:
        _state.running_backward = previous
    grads = input_grads if type(input_grads) is tuple else (input_grads,)
    bad = _first_non_finite([None if g is None else g.data for g in grads])
    if bad is not None and _first_non_finite([g.data for g in grad_outputs]) is None:
        upstream = ", ".join(_describe(g.data) for g in grad_outputs)
        _raise(function, "backward", f"{_kinds(grads[bad].data)} in the gradient of input {bad} "
                                     f"({_describe(grads[bad].data)}) from finite upstream gradients ({upstream})")
    return input_grads


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
