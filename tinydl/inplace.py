"""In-place methods of Tensor (``add_``, ``sub_``, ``mul_``, ``div_``, ``clamp_``, ``copy_``, ``fill_``, ``zero_``,
``t[key] = value``): they write into the tensor's own memory, bump its version, and stay differentiable.

How an in-place op enters the graph (as in PyTorch). Say ``y`` was made by op ``f`` and we run ``y.mul_(w)``:

1. ``old``, a new Tensor object, takes ``y``'s place as ``f``'s output: it shares ``y``'s memory, version counter
   and creator. It stands for "y before the change".
2. The out-of-place op runs on it: ``new = mul(clone(old), w)``. The ``clone`` is there because ``mul``'s backward
   reads its inputs' values, and ``old``'s memory is about to be overwritten; ops whose backward needs no values
   (``add_``, ``sub_``, ``clamp_``, ``copy_``, setitem) run on ``old`` directly.
3. ``new``'s values are written into ``y``'s memory, ``y``'s version goes up by one, and ``y`` takes ``new``'s
   place in the graph: its creator is now ``mul``, whose inputs lead back through ``old`` to ``f``.

So the gradient reaching ``y`` flows through ``mul`` to ``old`` and on to ``f``. If ``f``'s backward read its
output (``y = x.exp()``), the bumped version makes backward raise, since that output was overwritten.

Refused, with a message that says what to do instead: an in-place op that records the graph on a leaf that
requires grad (a parameter: update those under ``no_grad``, as optimizers do), or on a tensor that shares memory
with a view taking part in a graph (``v = x[0]`` then ``x.mul_(2)`` or ``v.mul_(2)``: the view's recorded history
would go stale; PyTorch re-derives it, tinydl asks for a ``clone()``).

Outside a graph (no input requires grad, or under ``no_grad``) an in-place op only writes and bumps the version.
Each method runs on the GPU that holds the tensor (``on_the_inputs_device``), as every op does.
The result is computed out of place and then copied in, which costs one temporary array: clarity before speed
here; the optimizers, where speed matters, update raw arrays directly.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable

import numpy

from . import functional as F, versions
from .autograd import Function, is_grad_enabled, no_grad
from .backend import device_of, get_array_module, is_array, to_device
from .costs import moves_only
from .functional._device import on_the_inputs_device
from .functional._operands import scalar_like
from .tensor import Tensor

__all__ = ["add_", "sub_", "mul_", "div_", "clamp_", "copy_", "fill_", "setitem"]


# --------------------------------------------------------------------------------------- the two graph ops
class CopyInto(Function):
    """y = src broadcast to the target's shape and converted to its dtype;  d(target) = 0, d(src) = gy (the engine
    sums it back to src's shape and dtype)."""

    name = "copy_"
    saved_inputs = ()
    saves_outputs = False
    flops = moves_only

    def forward(self, target, src):
        return get_array_module(target).broadcast_to(src, target.shape).astype(target.dtype)

    def backward(self, gy):
        return None, gy if self.needs_input_grad[1] else None


class IndexPut(Function):
    """y = x with y[key] = value;  dx = gy with zeros at key, d(value) = gy[key] (summed back to value's shape)."""

    name = "setitem"
    saved_inputs = ()
    saves_outputs = False
    flops = moves_only

    def __init__(self, key: Any):
        self.key = key

    def forward(self, x, value):
        y = x.copy()
        y[self.key] = value
        return y

    def backward(self, gy):
        gx = gvalue = None
        if self.needs_input_grad[0]:
            xp = get_array_module(gy.data)
            kept = xp.ones(gy.shape, dtype=bool)
            kept[self.key] = False
            gx = F.where(kept, gy, _zero(gy))
        if self.needs_input_grad[1]:
            gvalue = F.index(gy, self.key)
        return gx, gvalue


def _zero(like: Tensor) -> Tensor:
    return Tensor._from_array(get_array_module(like.data).zeros((), dtype=like.dtype))


# ------------------------------------------------------------------------------------------- the machinery
def _refuse_unwritable(tensor: Tensor, op: str) -> None:
    if not getattr(tensor.data.flags, "writeable", True):
        raise RuntimeError(f"{op}: this tensor of shape {tuple(tensor.shape)} is read-only (a broadcast view, as "
                           f"made by expand(), or a read-only array); clone() it and modify the clone")


def _refuse_in_graph(tensor: Tensor, op: str) -> None:
    if tensor.requires_grad and tensor.is_leaf:
        name = getattr(tensor, "_name", None)
        what = f"parameter {name!r}" if name else "a leaf tensor that requires grad"
        raise RuntimeError(f"{op}: {what} (shape {tuple(tensor.shape)}) cannot be changed by an in-place op "
                           f"while recording the graph: the graph could not tell its old value from the new. Update it "
                           f"under `with tinydl.no_grad():` (as optimizers do), or use the out-of-place op "
                           f"(x = x + y) to get a new tensor")
    if versions.in_graph_view(tensor):
        raise RuntimeError(f"{op}: this tensor (shape {tuple(tensor.shape)}) shares memory with a view (reshape, "
                           f"transpose, indexing, split, expand) that takes part in the graph, so an in-place "
                           f"change would leave that view's recorded history stale; clone() the tensor first and "
                           f"modify the clone")


def _write(tensor: Tensor, result: Tensor, op: str) -> None:
    """Copy ``result`` into ``tensor``'s memory (no broadcasting of the target, no narrowing of its dtype kind)."""
    if tuple(result.shape) != tuple(tensor.shape):
        raise ValueError(f"{op}: the result has shape {tuple(result.shape)}, which does not fit the tensor's "
                         f"shape {tuple(tensor.shape)} (an in-place op cannot change its target's shape)")
    if not get_array_module(result.data).can_cast(result.dtype, tensor.dtype, "same_kind"):
        raise TypeError(f"{op}: the result has dtype {result.dtype}, which cannot be stored in this tensor of "
                        f"dtype {tensor.dtype}; convert first (e.g. x = x.float())")
    tensor.data[...] = result.data


def _alias(tensor: Tensor) -> Tensor:
    """A new Tensor object for ``tensor`` as it is now (same memory and counter), put in its place in the graph."""
    old = Tensor._from_array(tensor.data)
    old._versions = versions.counter(tensor)
    old.requires_grad = tensor.requires_grad
    creator = tensor._creator
    if creator is not None:
        old._creator, old._index = creator, tensor._index
        creator._outputs[tensor._index] = weakref.ref(old)
    return old


def _adopt(tensor: Tensor, result: Tensor) -> None:
    """Make ``tensor`` stand where ``result`` stands in the graph (its creator's output)."""
    creator = result._creator
    tensor.requires_grad = result.requires_grad
    tensor._creator, tensor._index = creator, result._index
    if creator is not None:
        creator._outputs[result._index] = weakref.ref(tensor)


def _recording(tensor: Tensor, others: tuple) -> bool:
    return is_grad_enabled() and (tensor.requires_grad or any(
        isinstance(other, Tensor) and other.requires_grad for other in others))


def modify(tensor: Tensor, op: str, compute: Callable[..., Tensor], *others: Any,
           reads_self: bool = False) -> Tensor:
    """Replace ``tensor``'s values by ``compute(tensor, *others)``, in place, recording the change in the graph
    when one of them requires grad and grad mode is on. ``reads_self``: compute's backward reads the old values
    of ``tensor`` (they are then cloned before being overwritten). ``compute`` must end in an op whose backward
    does not read its output (add, sub, mul, div, where, copy_, setitem all qualify): that output is ``tensor``,
    whose version goes up right after."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(tensor).__name__}")
    _refuse_unwritable(tensor, op)
    if not _recording(tensor, others):
        with no_grad():
            result = compute(tensor, *others)
        _write(tensor, result, op)
        versions.bump(tensor)
        return tensor
    _refuse_in_graph(tensor, op)
    old = _alias(tensor)
    source = F.clone(old) if reads_self else old
    result = compute(source, *(source if other is tensor else other for other in others))
    _write(tensor, result, op)
    versions.bump(tensor)
    _adopt(tensor, result)
    return tensor


# --------------------------------------------------------------------------------------------- the methods
def _scaled(other: Any, alpha: Any) -> Any:
    return other if alpha == 1 else other * alpha


@on_the_inputs_device
def add_(tensor: Tensor, other: Any, alpha: Any = 1) -> Tensor:
    """tensor += alpha * other."""
    return modify(tensor, "add_", lambda t, o: F.add(t, _scaled(o, alpha)), other)


@on_the_inputs_device
def sub_(tensor: Tensor, other: Any, alpha: Any = 1) -> Tensor:
    """tensor -= alpha * other."""
    return modify(tensor, "sub_", lambda t, o: F.sub(t, _scaled(o, alpha)), other)


@on_the_inputs_device
def mul_(tensor: Tensor, other: Any) -> Tensor:
    """tensor *= other."""
    return modify(tensor, "mul_", F.mul, other, reads_self=True)


@on_the_inputs_device
def div_(tensor: Tensor, other: Any) -> Tensor:
    """tensor /= other (a floating tensor: true division cannot be stored in an integer one)."""
    return modify(tensor, "div_", F.div, other, reads_self=True)


@on_the_inputs_device
def clamp_(tensor: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """tensor = clamp(tensor, min, max)."""
    return modify(tensor, "clamp_", lambda t: F.clamp(t, min, max))


def _as_source(op: str, value: Any, like: Tensor) -> Tensor:
    """``value`` as a Tensor on ``like``'s device: a Tensor is moved there differentiably, host data (a NumPy array,
    a list) is copied over explicitly, as the user asked for it, and a number becomes a 0-d tensor."""
    if isinstance(value, Tensor):
        return F.to_device(value, like.device)
    if isinstance(value, (list, tuple)):
        value = numpy.asarray(value)
    if hasattr(value, "shape"):
        return Tensor(to_device(value, like.device))
    try:
        return scalar_like(value, like)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{op}: expected a Tensor, an array or a number, got {type(value).__name__}") from error


@on_the_inputs_device
def copy_(tensor: Tensor, src: Any) -> Tensor:
    """tensor = src (broadcast to tensor's shape, converted to its dtype); the gradient flows to src."""
    return modify(tensor, "copy_", lambda t, s: CopyInto()(t, s), _as_source("copy_", src, tensor))


@on_the_inputs_device
def fill_(tensor: Tensor, value: Any) -> Tensor:
    """tensor = value everywhere (a number, or a 0-d tensor, through which the gradient flows)."""
    return modify(tensor, "fill_", lambda t, s: CopyInto()(t, s), _as_source("fill_", value, tensor))


def _refuse_other_device(op: str, value: Any, target: Tensor) -> None:
    """No hidden transfer between devices in an assignment: a Tensor, or a GPU array, must already be on the
    target's device (host data may be copied to the GPU: that copy is what the user wrote)."""
    if isinstance(value, Tensor):
        where = value.device
    elif is_array(value) and device_of(value).type != "cpu":
        where = device_of(value)
    else:
        return
    if where != target.device:
        raise RuntimeError(f"{op}: the value is on {where} but the tensor is on {target.device}; move it with "
                           f".to({str(target.device)!r})")


@on_the_inputs_device
def setitem(tensor: Tensor, key: Any, value: Any) -> None:
    """tensor[key] = value (outside a graph, straight into the selected elements)."""
    _refuse_other_device("setitem", value, tensor)
    source = _as_source("setitem", value, tensor)
    if _recording(tensor, (source,)):
        modify(tensor, "setitem", lambda t, v: IndexPut(key)(t, v), source)
        return
    _refuse_unwritable(tensor, "setitem")
    tensor.data[key] = source.data
    versions.bump(tensor)
