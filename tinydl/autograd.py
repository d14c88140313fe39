"""Reverse-mode automatic differentiation: grad mode, ``Function`` (a node of the graph) and the backward engine.

The graph is built during the forward pass. Every Tensor produced by a differentiable op remembers the
``Function`` that made it (its *creator*); every Function remembers its input Tensors. ``backward`` walks that
graph from the output towards the leaves:

1. It sorts the Functions topologically with an explicit stack (no recursion, so a graph of a million ops is fine).
2. It visits them consumers-first, handing each Function the gradients of its outputs and collecting the gradients
   of its inputs. Gradients that reach the same Tensor along several paths are summed (``b = a + a`` gives
   ``db/da = 2``), and a gradient whose shape is a broadcast of its input's shape is summed back to that shape
   (:func:`tinydl.functional.sum_to`), so no op has to deal with broadcasting itself.
3. Leaves that require grad accumulate into ``.grad``; each Function's saved state is released as soon as it has
   been used, unless ``retain_graph`` is set.

Backward formulas are written with tinydl's own ops on Tensors. Run with grad mode off (the default) they build
nothing; run with ``create_graph=True`` they build the graph of the derivative itself, which gives higher-order
derivatives for free.
"""
from __future__ import annotations

import functools
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from numpy import ndarray as _ndarray

from . import events as _events, versions as _versions
from .backend import _NO_SCOPE, device_scope
from .events import observed as _observed  # the one instrumentation test per op (tinydl/events.py)
from .hooks import run_output_hooks as _run_output_hooks, run_tensor_hooks as _run_tensor_hooks
from .hooks import tensor_hooks as _tensor_hooks  # Tensor.register_hook; empty unless a hook is registered

if TYPE_CHECKING:  # pragma: no cover
    from .tensor import Tensor

__all__ = ["Function", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "backward", "grad",
           "queue_callback"]

# --------------------------------------------------------------------------------------------------- grad mode
class _GradMode(threading.local):
    """Per-thread grad mode (a data-loading thread cannot switch it for the main thread); on by default."""

    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    """Whether ops executed now record the graph (True unless inside ``no_grad``)."""
    return _grad_mode.enabled


def _set_enabled(enabled: bool) -> None:
    _grad_mode.enabled = enabled


class set_grad_enabled:
    """Context manager and decorator that switches recording on or off, restoring the previous mode on exit."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self._previous: list[bool] = []

    def __enter__(self) -> None:
        self._previous.append(is_grad_enabled())
        _set_enabled(self.mode)

    def __exit__(self, *exc_info: object) -> None:
        _set_enabled(self._previous.pop())

    def __call__(self, function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(self.mode):
                return function(*args, **kwargs)
        return wrapper


class no_grad(set_grad_enabled):
    """``with tinydl.no_grad():`` (or ``@tinydl.no_grad()``): run ops without recording a graph."""

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """``with tinydl.enable_grad():`` record the graph again inside a ``no_grad`` region."""

    def __init__(self) -> None:
        super().__init__(True)


# ---------------------------------------------------------------------------------------------------- Function
_Tensor: Any = None  # the Tensor class, bound by tinydl.tensor at import time (it imports this module)
_sum_to: Any = None  # tinydl.functional.sum_to, bound by tinydl.functional at import time


class Function:
    """One differentiable op and, once called with Tensors, one node of the graph.

    Subclasses implement

    * ``forward(*arrays) -> array | tuple[array, ...]`` on raw arrays (NumPy or CuPy), and
    * ``backward(*grad_outputs: Tensor) -> Tensor | None | tuple[Tensor | None, ...]``: the vector-Jacobian
      product, one gradient per input (None for an input that needs none), written with tinydl ops.

    Inside both, ``self.needs_input_grad`` tells which inputs need a gradient; inside backward, ``self.inputs``
    are the input Tensors and ``self.output(i)`` the i-th output Tensor. A Function whose backward is a raw kernel
    sets ``once_differentiable = True``: the engine then refuses to build a graph through its backward.

    What backward reads, checked against in-place changes (:mod:`tinydl.versions`): ``saved_inputs``, the
    positions of the inputs whose values it reads (None: all, the safe default), and ``saves_outputs``, whether
    it reads its outputs. An op whose outputs are views of its input 0 sets ``returns_view``.
    """

    once_differentiable = False
    saved_inputs: tuple[int, ...] | None = None
    saves_outputs = True
    returns_view = False
    _saved_versions: tuple[int, ...] | None = None

    @property
    def name(self) -> str:
        """The op's name as users know it (``Add`` -> ``add``)."""
        return type(self).__name__.lower()

    def forward(self, *arrays: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, *grad_outputs: "Tensor") -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{self.name}: backward is not implemented")

    def __call__(self, *inputs: "Tensor") -> Any:
        try:
            arrays = [tensor.data for tensor in inputs]
        except AttributeError:
            raise _not_tensors(self, inputs) from None
        if len(arrays) > 1:
            first = type(arrays[0])
            if first is not _ndarray or any([type(array) is not first for array in arrays]):
                _check_same_device(self, arrays)
        needs = tuple([tensor.requires_grad for tensor in inputs])
        record = True in needs and _grad_mode.enabled
        self.needs_input_grad = needs if record else (False,) * len(needs)
        event = _events.begin_forward(self, arrays, record) if _observed else None
        try:
            if arrays and type(arrays[0]) is not _ndarray:
                with device_scope(arrays[0]):  # a GPU array: compute on its GPU
                    result = self.forward(*arrays)
            else:
                result = self.forward(*arrays)
        except (ValueError, TypeError) as error:
            raise _named_error(self, error, arrays) from error
        if event is not None:
            _events.end_forward(event, result)
        make = _Tensor._from_array
        if type(result) is tuple:
            outputs = tuple(make(array) for array in result)
        else:
            outputs = make(result)
        if record:
            self.inputs = inputs
            if type(outputs) is tuple:
                self._outputs = [weakref.ref(output) for output in outputs]
                self._output_meta = [(output.shape, output.dtype) for output in outputs]
                for index, output in enumerate(outputs):
                    output._attach(self, index)
            else:
                self._outputs = [weakref.ref(outputs)]
                outputs._attach(self, 0)
            if self.saves_outputs or self.saved_inputs != ():
                self._saved_versions = _versions.record(self, inputs, outputs)
        if self.returns_view:
            _versions.share(inputs[0], outputs, record)
        return outputs

    @property
    def module_path(self) -> str | None:
        """The dotted path of the Module call that recorded this node ("" for the model itself; None outside
        modules), for graph drawings and profiles (:mod:`tinydl.events`)."""
        call = self.__dict__.get("module_call")
        return None if call is None else call.path

    def output(self, index: int = 0) -> "Tensor":
        """The ``index``-th output Tensor of this node (alive for as long as backward may need it)."""
        tensor = self._outputs[index]()
        if tensor is None:  # pragma: no cover - the engine keeps outputs alive while their grads are pending
            raise RuntimeError(f"{self.name}: output {index} was garbage-collected before backward")
        return tensor

    def _release(self) -> None:
        """Drop everything saved for backward (inputs, arrays) so their memory can be reused."""
        self.__dict__.clear()
        self._released = True


def _not_tensors(function: Function, inputs: Sequence[Any]) -> TypeError:
    kinds = ", ".join(f"input {i}: {type(value).__name__}" for i, value in enumerate(inputs))
    return TypeError(f"{function.name}: expected Tensors, got {kinds}")


def _check_same_device(function: Function, arrays: Sequence[Any]) -> None:
    """Raise when the arrays live on different devices (the slow path: mixed array types, or CuPy arrays)."""
    from .backend import device_of
    devices = [device_of(array) for array in arrays]
    if any(d != devices[0] for d in devices):
        listing = ", ".join(f"input {i} on {d}" for i, d in enumerate(devices))
        raise RuntimeError(f"{function.name}: expected all tensors on the same device, but found {listing}; "
                           "move them with .to(device)")


def _named_error(function: Function, error: Exception, arrays: Sequence[Any]) -> Exception:
    """Re-raise an array library's error with the op's name, shapes and dtypes in front."""
    message = str(error)
    if message.startswith(function.name + ":"):
        return error
    described = ", ".join(f"{tuple(a.shape)} {a.dtype}" for a in arrays if hasattr(a, "shape"))
    return type(error)(f"{function.name}: {message} (inputs: {described})")


# ------------------------------------------------------------------------------------------------------ engine
def _topological_order(roots: Iterable["Tensor"]) -> list[Function]:
    """Functions reachable from ``roots``, each listed after every Function that feeds it (iterative DFS)."""
    order: list[Function] = []
    visited: set[int] = set()
    stack: list[tuple[Function, bool]] = [(root._creator, False) for root in roots if root._creator is not None]
    while stack:
        function, children_done = stack.pop()
        if children_done:
            order.append(function)
            continue
        if id(function) in visited:
            continue
        visited.add(id(function))
        if getattr(function, "_released", False):
            raise RuntimeError(
                f"{function.name}: trying to backward through the graph a second time, but its saved values were "
                "freed by the first backward; pass retain_graph=True to the first backward() if you need to "
                "backward twice")
        stack.append((function, True))
        for tensor in function.inputs:
            creator = tensor._creator
            if creator is not None and id(creator) not in visited:
                stack.append((creator, False))
    return order


# ------------------------------------------------------------------------------------ after-backward callbacks
class _BackwardPasses(threading.local):
    """Per thread, the callbacks queued by each backward pass in progress (innermost last); None for a pass that
    returns gradients (``grad(..., inputs)``) instead of accumulating them into ``.grad``."""

    def __init__(self) -> None:
        self.queues: list[list[Callable[[], None]] | None] = []


_backward_passes = _BackwardPasses()


def queue_callback(callback: Callable[[], None]) -> None:
    """Run ``callback()`` once the backward pass in progress has accumulated every gradient into ``.grad``.

    Meant to be called from a Function's ``backward`` (this is how DistributedDataParallel averages gradients
    across processes after ``loss.backward()``). A callback queued several times in one pass runs once; callbacks
    run in the order queued, and not at all when the pass fails or only returns gradients (``tinydl.grad``).
    """
    if not _backward_passes.queues:
        raise RuntimeError("queue_callback: no backward pass is in progress; call it from a Function's backward")
    queue = _backward_passes.queues[-1]
    if queue is not None and callback not in queue:
        queue.append(callback)


def backward(outputs: Sequence["Tensor"], grad_outputs: Sequence["Tensor"], retain_graph: bool = False,
             create_graph: bool = False, inputs: Sequence["Tensor"] | None = None) -> list["Tensor | None"] | None:
    """Backpropagate ``grad_outputs`` from ``outputs``.

    Without ``inputs``, gradients accumulate into ``.grad`` of every leaf that requires grad. With ``inputs``,
    nothing is accumulated; the gradients with respect to ``inputs`` (leaves or not) are returned in order.
    """
    if create_graph and not retain_graph:
        retain_graph = True
    wanted: dict[int, int] = {}  # id(tensor) -> position in ``inputs``
    captured: list[Any] = []
    if inputs is not None:
        wanted = {id(tensor): position for position, tensor in enumerate(inputs)}
        captured = [None] * len(inputs)
    # pending[function] = [gradients of its outputs, the output Tensors kept alive until it runs]
    pending: dict[Function, list[list[Any]]] = {}
    leaf_arrays: set[int] = set()
    held: dict[int, list[Any]] = {}  # leaves with hooks: [tensor, summed gradient], hooked once complete

    def accumulate(total: "Tensor | None", gradient: "Tensor") -> "Tensor":
        """total + gradient; a raw array addition unless the sum itself must be differentiable."""
        if total is None:
            return gradient
        if create_graph:
            return total + gradient
        return _Tensor._from_array(total.data + gradient.data)

    def deliver(tensor: "Tensor", gradient: "Tensor") -> None:
        if gradient.data.dtype != tensor.data.dtype:
            gradient = gradient.to(tensor.data.dtype)
        if gradient.data.shape != tensor.data.shape:
            gradient = _sum_to(gradient, tensor.data.shape)
        creator = tensor._creator
        if _tensor_hooks and creator is None and id(tensor) in _tensor_hooks:
            entry = held.setdefault(id(tensor), [tensor, None])
            entry[1] = accumulate(entry[1], gradient)
            return
        if creator is None or id(tensor) in wanted:
            collect(tensor, gradient)
            if creator is None:
                return
        slot = pending.get(creator)
        if slot is None:
            slot = pending[creator] = [[None] * len(creator._outputs), [None] * len(creator._outputs)]
        grads, keep = slot
        index = tensor._index
        grads[index] = accumulate(grads[index], gradient)
        keep[index] = tensor

    def collect(tensor: "Tensor", gradient: "Tensor") -> None:
        position = wanted.get(id(tensor))
        if position is not None:
            captured[position] = accumulate(captured[position], gradient)
        elif inputs is None and tensor.requires_grad:
            if not create_graph and tensor.grad is None:
                # .grad must own writable memory that no other leaf shares (optimizers update it in place)
                if id(gradient.data) in leaf_arrays or _is_broadcast_view(gradient.data):
                    gradient = _Tensor._from_array(gradient.data.copy())
                else:
                    gradient = gradient.detach()
                leaf_arrays.add(id(gradient.data))
            tensor.grad = accumulate(tensor.grad, gradient)

    order = _topological_order(outputs)
    previous_mode = is_grad_enabled()
    _set_enabled(create_graph)
    callbacks: list[Callable[[], None]] = []
    _backward_passes.queues.append(callbacks if inputs is None else None)
    try:
        first = outputs[0].data if outputs else None
        with device_scope(first) if first is not None and type(first) is not _ndarray else _NO_SCOPE:
            for output, gradient in zip(outputs, grad_outputs):
                leaf_arrays.add(id(gradient.data))
                if output.requires_grad:
                    deliver(output, gradient)
        for function in reversed(order):
            slot = pending.pop(function, None)
            if slot is None:
                continue
            grads = slot[0]
            if _tensor_hooks:
                grads = _run_output_hooks(grads, slot[1])
            if function.once_differentiable and create_graph:
                raise RuntimeError(
                    f"{function.name}: this op's backward is a fused kernel that is differentiable only once; "
                    "create_graph=True (a second derivative) is not supported through it")
            if function._saved_versions is not None:
                _versions.check(function)
            first = function.inputs[0].data
            with device_scope(first) if type(first) is not _ndarray else _NO_SCOPE:  # a GPU's work on that GPU
                if len(grads) > 1:
                    grads = [g if g is not None else _zeros(function, i) for i, g in enumerate(grads)]
                if _observed:
                    input_grads = _events.backward_step(function, grads)
                else:
                    input_grads = function.backward(*grads)
                if type(input_grads) is not tuple:
                    input_grads = (input_grads,)
                for tensor, gradient in zip(function.inputs, input_grads):
                    if gradient is not None and tensor.requires_grad:
                        deliver(tensor, gradient)
            if not retain_graph:
                function._release()
        for tensor, gradient in held.values():
            with device_scope(gradient.data) if type(gradient.data) is not _ndarray else _NO_SCOPE:
                collect(tensor, _run_tensor_hooks(tensor, gradient))
    finally:
        _set_enabled(previous_mode)
        _backward_passes.queues.pop()
    for callback in callbacks:
        callback()
    return captured if inputs is not None else None


def _is_broadcast_view(array: Any) -> bool:
    """True for a view in which several elements share memory (a stride of 0 along an axis longer than 1, as
    ``broadcast_to`` makes), or that NumPy marks read-only. CuPy arrays have no ``writeable`` flag and CuPy's
    broadcast views are writable, so the strides are what tells."""
    if not getattr(array.flags, "writeable", True):
        return True
    return any(stride == 0 and size > 1 for stride, size in zip(array.strides, array.shape))


def _zeros(function: Function, index: int) -> "Tensor":
    """A zero gradient for an output of a multi-output Function that received none."""
    from .backend import get_array_module
    shape, dtype = function._output_meta[index]
    xp = get_array_module(function.inputs[0].data)
    return _Tensor._from_array(xp.zeros(shape, dtype=dtype))


def _as_grad_list(outputs: Sequence["Tensor"], grad_outputs: Any) -> list["Tensor"]:
    """Default and validate the upstream gradients: ones for scalar outputs, an error otherwise."""
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, _Tensor) or not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"backward: got {len(grad_outputs)} gradients for {len(outputs)} outputs")
    result = []
    for output, gradient in zip(outputs, grad_outputs):
        if gradient is None:
            if output.size != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for scalar outputs, but the output has shape "
                    f"{tuple(output.shape)}; pass a gradient of that shape (or reduce the output, e.g. .sum())")
            from .backend import get_array_module
            with device_scope(output.data):
                gradient = _Tensor._from_array(get_array_module(output.data).ones(output.shape,
                                                                                  dtype=output.dtype))
        elif not isinstance(gradient, _Tensor):
            from .tensor import tensor as make_tensor
            gradient = make_tensor(gradient, dtype=output.dtype, device=output.device)
        if gradient.shape != output.shape:
            raise ValueError(f"backward: gradient of shape {tuple(gradient.shape)} given for an output of shape "
                             f"{tuple(output.shape)}")
        result.append(gradient)
    return result


def grad(outputs: "Tensor | Sequence[Tensor]", inputs: "Tensor | Sequence[Tensor]", grad_outputs: Any = None,
         retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple["Tensor | None", ...]:
    """Gradients of ``outputs`` with respect to ``inputs``, returned (not accumulated into ``.grad``).

    ``create_graph=True`` records the graph of the gradients themselves, so they can be differentiated again.
    """
    outputs = [outputs] if isinstance(outputs, _Tensor) else list(outputs)
    single = isinstance(inputs, _Tensor)
    inputs = [inputs] if single else list(inputs)
    for position, tensor in enumerate(inputs):
        if not tensor.requires_grad:
            raise RuntimeError(f"grad: input {position} (shape {tuple(tensor.shape)}) does not require grad")
    for position, output in enumerate(outputs):
        if not output.requires_grad:
            raise RuntimeError(f"grad: output {position} does not require grad (it does not depend on any input "
                               "that requires grad, or it was computed under no_grad)")
    grads = backward(outputs, _as_grad_list(outputs, grad_outputs),
                     retain_graph=create_graph if retain_graph is None else retain_graph,
                     create_graph=create_graph, inputs=inputs)
    if not allow_unused:
        for position, gradient in enumerate(grads):
            if gradient is None:
                raise RuntimeError(f"grad: input {position} was not used to compute the outputs; "
                                   "pass allow_unused=True to get None for it")
    return tuple(grads)
