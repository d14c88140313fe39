"""Version counters: how backward notices that a value it needs was changed in place after it was saved.

Every Tensor has a version, 0 when it is made, and every in-place change of its data through tinydl adds one:
optimizer steps, the in-place methods (``add_``, ``mul_``, ``copy_``, ``t[i] = v``, ...), ``load_state_dict``,
the ``nn.init`` functions, ``Module.to``. When an op records the graph, it also records the versions of the
tensors whose *values* its backward will read (``Function.saved_inputs``, ``Function.saves_outputs``); before
the backward engine runs that op's backward, it compares them with the current versions (:func:`check`). A
difference means that backward would compute with values the forward never saw, a silently wrong gradient, so
it raises instead, naming the op, the tensor and the fixes.

Views. Tensors that share memory share one counter, as in PyTorch: a view-producing op (``Function.returns_view``:
reshape, transpose, permute, basic indexing, split, expand) hands its input's counter to each output whose array
shares memory with the input, and ``detach()`` shares it too. So ``x.T.mul_(2)`` bumps ``x``'s version, and an op
that saved ``x`` notices. Tensors that share memory without tinydl knowing (``Tensor(x.data)``, ``x.numpy()``)
have separate counters.

The escape hatch: writing into ``tensor.data`` directly bumps nothing (as in PyTorch); use it knowingly.

Counters are made lazily: a tensor without one is at version 0, so the hot path of an op costs one attribute read
per saved tensor. A global count of all in-place changes (``_changes``) lets backward skip the comparison of an
op when nothing at all was changed in place since that op ran, the usual case.

Where tinydl is stricter than PyTorch (false positives, each an error where the gradient would have been right):

* An op declares what its backward may read, not what it reads for the gradients asked this time: ``mul``,
  ``matmul``, ``linear`` and ``conv2d`` save both operands even when only one of them needs a gradient, so
  ``optimizer.step()`` before ``backward()`` raises even for a first layer whose input needs no gradient.
* The fused sequence kernels (LSTM, GRU, RNN over a whole sequence) and attention keep the default: every input
  and every output.
* An in-place op that records the graph is refused on memory that a live view in the graph shares (PyTorch
  re-derives the view's history instead; see :mod:`tinydl.inplace`).
"""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from .autograd import Function
    from .tensor import Tensor

__all__ = ["VersionCounter", "counter", "version", "bump", "share", "record", "check", "in_graph_view"]

_PRUNE_AT = 16  # dead weak references a counter keeps before it sweeps them out
_changes = 0  # in-place changes of any tensor so far (only ever grows)


class VersionCounter:
    """The version of one block of memory, shared by every Tensor that views it.

    ``graph_views`` holds weak references to the views of that memory that take part in a graph; an in-place op
    that records the graph is refused while one is alive (see :func:`in_graph_view`)."""

    __slots__ = ("value", "graph_views")

    def __init__(self, value: int = 0):
        self.value = value
        self.graph_views: list[weakref.ref] = []


def counter(tensor: "Tensor") -> VersionCounter:
    """The tensor's counter, made on first use."""
    shared = tensor._versions
    if shared is None:
        shared = tensor._versions = VersionCounter()
    return shared


def version(tensor: "Tensor") -> int:
    """How many in-place changes the tensor's memory has seen through tinydl."""
    shared = tensor._versions
    return 0 if shared is None else shared.value


def bump(tensor: "Tensor") -> None:
    """Record one in-place change of the tensor's data."""
    global _changes
    counter(tensor).value += 1
    _changes += 1


def share(source: "Tensor", outputs: Any, in_graph: bool) -> None:
    """Give each output of a view-producing op that shares memory with ``source`` the source's counter."""
    from .backend import device_scope, get_array_module
    xp = get_array_module(source.data)
    shared = counter(source)
    for output in outputs if type(outputs) is tuple else (outputs,):
        if output.data is source.data or _may_share_memory(xp, device_scope, output.data, source.data):
            output._versions = shared
            if in_graph:
                if len(shared.graph_views) >= _PRUNE_AT:
                    shared.graph_views = [view for view in shared.graph_views if view() is not None]
                shared.graph_views.append(weakref.ref(output))


def _may_share_memory(xp: Any, device_scope: Any, a: Any, b: Any) -> bool:
    """Whether two arrays may overlap, asked on the GPU that holds them (CuPy works on the current device)."""
    with device_scope(b):
        return bool(xp.may_share_memory(a, b))


def in_graph_view(tensor: "Tensor") -> bool:
    """Whether ``tensor`` is, or shares memory with, a live view that takes part in a graph.

    Changing such memory in place while recording would leave the view's recorded history (``v = x[0]``) stale,
    so the gradient through the view would be wrong; tinydl refuses that case (PyTorch re-derives the view's
    history instead)."""
    shared = tensor._versions
    return shared is not None and any(view() is not None for view in shared.graph_views)


# ----------------------------------------------------------------------------------------- saving and checking
def record(function: "Function", inputs: Sequence["Tensor"], outputs: Any) -> tuple[int, ...]:
    """The version of each tensor that ``function``'s backward will read, then the global count of changes, now
    (the engine keeps it for :func:`check`). Called for every op that records the graph, so written for speed.

    A tuple, not a list: a tuple of ints is dropped from the cyclic garbage collector's tracking at the first
    collection it survives, and every object the collector still tracks is one more that each full collection
    walks; a graph of 10,000 ops is walked several times while it is built (see ``bench_overhead.py``)."""
    indices = function.saved_inputs
    if indices is None:
        versions = [0 if tensor._versions is None else tensor._versions.value for tensor in inputs]
    elif indices:
        saved = [inputs[i] for i in indices if i < len(inputs)]
        versions = [0 if tensor._versions is None else tensor._versions.value for tensor in saved]
    else:
        versions = []
    if function.saves_outputs:
        if type(outputs) is tuple:
            versions.extend([0 if output._versions is None else output._versions.value for output in outputs])
        else:
            versions.append(0 if outputs._versions is None else outputs._versions.value)
    versions.append(_changes)
    return tuple(versions)


def check(function: "Function") -> None:
    """Raise if a tensor that ``function`` saved for backward was changed in place since. Runs before every
    backward of an op that saved something, so it compares first and explains only on a mismatch."""
    if function._saved_versions[-1] == _changes:  # no tensor at all was changed in place since the op ran
        return
    indices, inputs = function.saved_inputs, function.inputs
    saved = inputs if indices is None else [inputs[i] for i in indices if i < len(inputs)]
    if function.saves_outputs:
        saved = [*saved, *[reference() for reference in function._outputs]]
    now = tuple([0 if tensor is None or tensor._versions is None else tensor._versions.value for tensor in saved])
    if now == function._saved_versions[:-1]:
        return
    for tensor, then, current in zip(saved, function._saved_versions[:-1], now):
        if current != then and tensor is not None:  # (an output nothing holds any more cannot have changed)
            raise RuntimeError(_modified_message(function, tensor, then))


def _modified_message(function: "Function", tensor: "Tensor", then: int) -> str:
    positions = [i for i, candidate in enumerate(function.inputs) if candidate is tensor]
    role = f"input {positions[0]}" if positions else "its output"
    name = getattr(tensor, "_name", None)
    what = f"parameter {name!r}" if name else "a tensor"
    described = f"{what} of shape {tuple(tensor.shape)} and dtype {tensor.dtype}"
    return (f"backward: {role} of {function.name} ({described}) was modified by an in-place operation after "
            f"{function.name} saved it for backward: saved at version {then}, now at version {version(tensor)}. "
            f"The gradient would be computed with the new values, so it would be wrong. Fixes: call "
            f"optimizer.step() (and any other in-place update of parameters) after loss.backward(), not between "
            f"the forward pass and backward; or clone() the tensor before modifying it in place, or use the "
            f"out-of-place op (x = x + y instead of x.add_(y)); writing into tensor.data is not tracked, if you "
            f"know the gradient does not depend on those values")
