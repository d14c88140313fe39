"""The engine's one instrumentation point: every op call and every backward step, as an :class:`OpEvent`.

``Function.__call__`` and the backward loop of :mod:`tinydl.autograd` each test one module-level set,
:data:`observed`, per op. It is empty unless some thread has a subscriber or is inside a ``Module`` call, so a
plain script pays that one test and nothing else. When it is not empty the engine hands the op to this module:

* inside a Module call, the recorded node gets ``module_call`` (the :class:`ModuleCall`), whose dotted path
  ("features.0", "" for the model itself) ``node.module_path`` gives, so graph drawings and the profiler can
  group ops by module;
* for every subscriber of the running thread, an :class:`OpEvent` is built and passed to ``begin(event)`` before
  the op runs and to ``end(event)`` after it (an exception in the op skips ``end``).

Everything that watches the engine (the profiler, the backward tracer, graph capture, ``detect_anomaly``) is a
subscriber: an object with ``begin`` and ``end`` methods and a ``wants_site`` attribute. The user's ``file:line``
costs a walk up the stack, so it is computed only when a subscriber sets ``wants_site``.

Phases: ``"forward"`` for an op called outside any backward step; ``"backward"`` for a backward step of the engine
(``event.function`` is the node whose ``backward`` runs; ``event.inputs`` are the gradients of its outputs and
``event.outputs`` the gradients it returns for its inputs). An op called by a backward formula is a forward call
of its own Function whose ``parent`` is the running backward step, and whose phase is ``"backward"``.
"""
from __future__ import annotations

import itertools
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Iterator, Protocol, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from .autograd import Function
    from .nn.module import Module

__all__ = ["OpEvent", "ModuleCall", "Subscriber", "subscribe", "unsubscribe", "subscribed", "subscribers",
           "enter_module", "exit_module", "observed"]

_PACKAGE_DIRECTORY = os.path.dirname(os.path.abspath(__file__)) + os.sep

# Idents of the threads that have a subscriber or an open Module call. The engine's one test per op; a set that
# is empty costs one truth test, whereas a thread-local read would cost four times as much.
observed: set[int] = set()


class Subscriber(Protocol):
    """What the engine calls: ``begin(event)`` before the op runs, ``end(event)`` after it."""

    wants_site: bool

    def begin(self, event: "OpEvent") -> None: ...

    def end(self, event: "OpEvent") -> None: ...


class ModuleCall:
    """One call of a Module: the ``module``, the ``parent`` call (None for the outermost), a per-thread ``index``
    that tells two calls of the same module apart, and its dotted ``path`` ("" for the outermost model, then
    the attribute names: "features.0"), worked out only when someone reads it."""

    __slots__ = ("module", "parent", "index", "_path")

    def __init__(self, module: "Module", parent: "ModuleCall | None", index: int):
        self.module, self.parent, self.index, self._path = module, parent, index, None

    @property
    def path(self) -> str:
        if self._path is None:
            parent = self.parent
            if parent is None:
                self._path = ""
            else:
                name = next((key for key, child in parent.module._modules.items() if child is self.module),
                            type(self.module).__name__.lower())
                self._path = f"{parent.path}.{name}" if parent.path else name
        return self._path

    def __repr__(self) -> str:
        return f"ModuleCall({self.path or '<' + type(self.module).__name__ + '>'!s}, call {self.index})"


class _ThreadState(threading.local):
    """Per thread: subscribers, the stack of open Module calls, and the stack of running backward steps."""

    def __init__(self) -> None:
        self.subscribers: tuple = ()
        self.modules: list[ModuleCall] = []
        self.steps: list[OpEvent] = []
        self.calls = itertools.count()
        self.op_ids = itertools.count()


_state = _ThreadState()


class OpEvent:
    """One op call or one backward step, as subscribers see it.

    ``op`` (the op's name), ``phase`` ("forward" or "backward"), ``op_id`` (the node's number, the same for its
    forward and its backward step; counted per thread from the first subscription), ``module_path``, ``site``
    ("file:line" of the user code that made the node, or None when nobody asked), ``inputs`` and ``outputs`` (raw
    arrays; None for a missing gradient), ``recorded`` (whether the call recorded a graph node), ``parent`` (the
    backward step running the call, or None), ``start`` and ``end`` (``time.perf_counter_ns``). Every subscriber
    gets the same event (``data`` is a scratch dict, one key per subscriber); subscribers keep what they need and
    drop the event, which holds arrays alive.
    """

    __slots__ = ("function", "op", "phase", "op_id", "module_path", "site", "inputs", "outputs", "recorded",
                 "parent", "start", "end", "data")

    def __init__(self, function: "Function", phase: str, op_id: int, module_path: str, site: str | None,
                 inputs: Sequence[Any], recorded: bool, parent: "OpEvent | None"):
        self.function, self.op, self.phase, self.op_id = function, function.name, phase, op_id
        self.module_path, self.site, self.inputs = module_path, site, inputs
        self.recorded, self.parent = recorded, parent
        self.outputs: tuple = ()
        self.start = self.end = 0
        self.data: dict = {}  # per-subscriber scratch space (a CUDA start event, a timer...)

    @property
    def seconds(self) -> float:
        return (self.end - self.start) * 1e-9

    @staticmethod
    def shapes(arrays: Sequence[Any]) -> list[tuple[int, ...] | None]:
        return [None if a is None else tuple(a.shape) for a in arrays]

    @staticmethod
    def dtypes(arrays: Sequence[Any]) -> list[str | None]:
        return [None if a is None else str(a.dtype) for a in arrays]

    def __repr__(self) -> str:
        return (f"OpEvent({self.op} {self.phase} #{self.op_id} in {self.module_path!r} at {self.site}: "
                f"{self.shapes(self.inputs)} -> {self.shapes(self.outputs)})")


# ------------------------------------------------------------------------------------------------ subscribing
def _refresh() -> None:
    ident = threading.get_ident()
    if _state.subscribers or _state.modules:
        observed.add(ident)
    else:
        observed.discard(ident)


def subscribe(subscriber: Subscriber) -> None:
    """Start sending this thread's op events to ``subscriber`` (after the ones already subscribed)."""
    if not _state.subscribers:
        _state.op_ids = itertools.count()
    _state.subscribers = _state.subscribers + (subscriber,)
    _refresh()


def unsubscribe(subscriber: Subscriber) -> None:
    """Stop sending events to ``subscriber`` (no error when it was not subscribed)."""
    _state.subscribers = tuple(s for s in _state.subscribers if s is not subscriber)
    _refresh()


def subscribers() -> tuple:
    """This thread's subscribers, in subscription order."""
    return _state.subscribers


# ------------------------------------------------------------------------------------------------ module calls
def enter_module(module: "Module") -> None:
    """Called by ``Module.__call__`` before its forward: push a :class:`ModuleCall` on this thread's stack."""
    stack = _state.modules
    stack.append(ModuleCall(module, stack[-1] if stack else None, next(_state.calls)))
    if len(stack) == 1:
        observed.add(threading.get_ident())


def exit_module() -> None:
    """Called by ``Module.__call__`` after its forward (also when it raised)."""
    stack = _state.modules
    stack.pop()
    if not stack:
        _refresh()


# -------------------------------------------------------------------------------------------- engine entry points
def user_site() -> str | None:
    """``file:line`` of the innermost frame outside tinydl (the user's line that called the op)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIRECTORY):
        frame = frame.f_back
    return None if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"


def begin_forward(function: "Function", arrays: Sequence[Any], record: bool) -> OpEvent | None:
    """Called by ``Function.__call__`` before ``forward`` when :data:`observed` is not empty; returns the event
    to finish with :func:`end_forward`, or None when nobody in this thread subscribes."""
    modules = _state.modules
    if record and modules:
        function.module_call = modules[-1]  # Function.module_path reads its path
    subscribers = _state.subscribers
    if not subscribers:
        return None
    steps = _state.steps
    parent = steps[-1] if steps else None
    op_id = next(_state.op_ids)
    site = None
    if parent is not None:
        site = parent.site
    elif any(s.wants_site for s in subscribers):
        site = user_site()
    if record:
        function.op_id, function.site = op_id, site
    path = modules[-1].path if modules else (parent.module_path if parent is not None else None)
    phase = "forward" if parent is None else "backward"
    event = OpEvent(function, phase, op_id, path, site, arrays, record, parent)
    for subscriber in subscribers:
        subscriber.begin(event)
    event.start = time.perf_counter_ns()
    return event


def end_forward(event: OpEvent, result: Any) -> None:
    """Called by ``Function.__call__`` with the raw result of ``forward``."""
    event.end = time.perf_counter_ns()
    event.outputs = result if type(result) is tuple else (result,)
    for subscriber in _state.subscribers:
        subscriber.end(event)


def backward_step(function: "Function", grads: Sequence["Any"]) -> Any:
    """Run ``function.backward(*grads)`` for the engine when :data:`observed` is not empty, as an event of phase
    "backward" around it (ops called inside get it as their ``parent``)."""
    subscribers = _state.subscribers
    if not subscribers:
        return function.backward(*grads)
    op_id = getattr(function, "op_id", None)
    if op_id is None:
        op_id = next(_state.op_ids)
    arrays = [None if g is None else g.data for g in grads]
    event = OpEvent(function, "backward", op_id, getattr(function, "module_path", None),
                    getattr(function, "site", None), arrays, True, None)
    for subscriber in subscribers:
        subscriber.begin(event)
    _state.steps.append(event)
    event.start = time.perf_counter_ns()
    try:
        input_grads = function.backward(*grads)
    finally:
        event.end = time.perf_counter_ns()
        _state.steps.pop()
    returned = input_grads if type(input_grads) is tuple else (input_grads,)
    event.outputs = tuple(None if g is None else g.data for g in returned)
    for subscriber in subscribers:
        subscriber.end(event)
    return input_grads


class subscribed:
    """``with subscribed(subscriber):`` subscribe for the duration of the block."""

    def __init__(self, subscriber: Subscriber):
        self.subscriber = subscriber

    def __enter__(self) -> Subscriber:
        subscribe(self.subscriber)
        return self.subscriber

    def __exit__(self, *exc_info: object) -> None:
        unsubscribe(self.subscriber)


def iter_saved_arrays(function: "Function", input_arrays: Sequence[Any] | None = None) -> Iterator[Any]:
    """The arrays a recorded node keeps alive for its backward: its inputs' data (``input_arrays`` while the
    node is being made) and the arrays among its own attributes (masks, argmax indices, statistics), each once."""
    seen: set[int] = set()
    if input_arrays is None:
        input_arrays = [t.data for t in getattr(function, "inputs", ())]
    values: list[Any] = list(input_arrays)
    for name, value in vars(function).items():
        if name in ("inputs", "_outputs", "_output_meta", "module_call", "module_path", "op_id", "site"):
            continue
        values.extend(value if isinstance(value, (tuple, list)) else (value,))
    for value in values:
        array = getattr(value, "data", value) if hasattr(value, "_creator") else value
        if hasattr(array, "nbytes") and hasattr(array, "shape") and id(array) not in seen:
            seen.add(id(array))
            yield array
