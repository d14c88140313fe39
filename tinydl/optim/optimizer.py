"""``Optimizer``: parameter groups, per-parameter state, ``zero_grad``, ``step`` and a saveable state dict.

A subclass implements ``_update(param, grad, state, group)``: one in-place step on the raw arrays of one parameter.
The base class runs it under ``no_grad`` for every parameter that has a gradient.

Updates are sequences of in-place ufunc calls (``xp.multiply(a, b, out=c)``) on preallocated arrays, so a step
allocates nothing. On the CPU they run block by block (:meth:`Workspace.blocks`): one block of all the arrays
involved fits in cache, so the dozen passes of an Adam update cost little more than one trip through memory.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Iterable, Iterator

import numpy

from ..autograd import enable_grad, no_grad
from ..backend import device_of, device_scope, get_array_module, to_device
from ..tensor import Tensor
from .. import versions

__all__ = ["Optimizer", "Workspace", "add_scaled", "effective_gradient"]

CPU_BLOCK = 1 << 15  # elements per block on the CPU: 128 KiB of float32 per array, a handful of arrays in L2


class Workspace:
    """Where the elementwise updates of an optimizer run: the arrays of a parameter cut into matching blocks, and
    reusable scratch arrays (one set per device and dtype, grown to the largest size needed) for each block."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, str, int], Any] = {}

    def _scratch(self, like: Any, size: int, slot: int) -> Any:
        key = (str(device_of(like)), like.dtype.str, slot)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.size < size:
            buffer = self._buffers[key] = get_array_module(like).empty(size, dtype=like.dtype)
        return buffer

    def blocks(self, *arrays: Any, scratch: int = 2) -> Iterator[tuple[Any, ...]]:
        """Matching pieces of same-shaped arrays, each tuple led by ``scratch`` uninitialised scratch arrays of the
        piece's shape: ``for s0, s1, p, g in workspace.blocks(param, grad)``.

        On the CPU, when every array is C-contiguous, the pieces are flat views of CPU_BLOCK elements (writes
        through them land in the arrays). Otherwise (on a GPU, where one kernel per pass over the whole array is
        best, or for a non-contiguous array) there is one piece: the arrays themselves.
        """
        first = arrays[0]
        if device_of(first).type != "cpu" or first.size <= CPU_BLOCK or not all(a.flags.c_contiguous
                                                                                  for a in arrays):
            buffers = [self._scratch(first, first.size, slot)[:first.size].reshape(first.shape)
                       for slot in range(scratch)]
            yield (*buffers, *arrays)
            return
        flat = [a.reshape(-1) for a in arrays]
        buffers = [self._scratch(first, CPU_BLOCK, slot) for slot in range(scratch)]
        for start in range(0, first.size, CPU_BLOCK):
            stop = min(start + CPU_BLOCK, first.size)
            yield (*(b[:stop - start] for b in buffers), *(a[start:stop] for a in flat))


def add_scaled(target: Any, source: Any, alpha: float, scratch: Any) -> None:
    """target += alpha * source, in place, using ``scratch`` (which may be ``source`` itself) for the product."""
    if alpha == 1:
        target += source
        return
    get_array_module(target).multiply(source, alpha, out=scratch)
    target += scratch


def effective_gradient(param: Any, grad: Any, weight_decay: float, maximize: bool, scratch: Any) -> Any:
    """The gradient a step descends: grad + weight_decay * param (L2 regularisation), with -grad in place of grad
    when maximizing. Returns ``grad`` itself when there is nothing to add, else ``scratch`` holding the result."""
    if weight_decay == 0 and not maximize:
        return grad
    get_array_module(param).multiply(param, weight_decay, out=scratch)
    if maximize:
        scratch -= grad
    else:
        scratch += grad
    return scratch


def _contiguous(array: Any) -> Any:
    """The array itself when C-contiguous, else a contiguous copy (``ascontiguousarray`` would turn a 0-d array
    into shape (1,), which no longer fits a 0-d parameter)."""
    return array if array.flags.c_contiguous else get_array_module(array).ascontiguousarray(array)


def _check_non_negative(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0.0:
        raise ValueError(f"{owner}: invalid {name} {value!r}; it must be a number >= 0")


class Optimizer:
    """Base class of optimizers.

    ``params`` is an iterable of Parameters, or of dicts (parameter groups) ``{"params": [...], "lr": ...}``
    whose options override ``defaults`` for that group. ``state[param]`` holds each parameter's running state
    (momentum buffers, moment estimates), created at its first step.
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]):
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors or of dicts, got a "
                            "single Tensor; pass [tensor] or model.parameters()")
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = []
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self._workspace = Workspace()
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list (params); did the model "
                             "register its parameters?")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def _check_options(self, group: dict[str, Any]) -> None:
        """Validate a group's options (subclasses check theirs; lr is checked here)."""
        _check_non_negative(type(self).__name__, "learning rate (lr)", group["lr"])

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (those it omits come from ``defaults``)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"{type(self).__name__}: a parameter group must be a dict, got "
                            f"{type(param_group).__name__}")
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got a parameter group with an empty parameter list (params)")
        for param in params:
            if not isinstance(param, Tensor):
                raise TypeError(f"{type(self).__name__}: can only optimize Tensors, got a {type(param).__name__}")
            if not param.is_leaf:
                raise ValueError(f"{type(self).__name__}: can only optimize leaf Tensors (parameters), got one "
                                 "computed by an op")
        group = {**self.defaults, **param_group, "params": params}
        self._check_options(group)
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or existing & {id(p) for p in params}:
            raise ValueError(f"{type(self).__name__}: some parameters appear more than once (in one group or in "
                             "several)")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients (set them to None, or to zeros with ``set_to_none=False``)."""
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if set_to_none:
                    param.grad = None
                else:
                    param.grad = Tensor(get_array_module(param.data).zeros(param.shape, dtype=param.dtype))

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient, in place. ``closure`` (re-evaluating the loss) is called
        first, with grad mode on, and its result returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for param in group["params"]:
                    if param.grad is None:
                        continue
                    grad = param.grad.data
                    if grad.shape != param.shape or device_of(grad) != device_of(param.data):
                        raise ValueError(f"{type(self).__name__}: gradient of shape {tuple(grad.shape)} on "
                                         f"{device_of(grad)} does not fit its parameter of shape "
                                         f"{tuple(param.shape)} on {device_of(param.data)}")
                    with device_scope(param.data):
                        self._update(param.data, _contiguous(grad), self.state[param], group)
                    versions.bump(param)  # a graph that saved the old values must not use them in backward
        return loss

    def _update(self, param: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__}: _update is not implemented")  # pragma: no cover

    # ------------------------------------------------------------------------------------------ state dict
    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: {name: array or number}}, "param_groups": [{options..., "params": [index, ...]}]},
        with parameters numbered in group order, as in PyTorch. Arrays are the live state (not copies);
        ``tinydl.save`` writes the dict as it is."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            for param in group["params"]:
                index.setdefault(id(param), len(index))
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": [index[id(p)] for p in group["params"]]})
        state = {index[id(param)]: dict(values) for param, values in self.state.items() if id(param) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore options and per-parameter state saved by :meth:`state_dict` (possibly through ``tinydl.save``
        and ``tinydl.load``). State arrays are copied to each parameter's device, floating ones in its dtype."""
        owner = type(self).__name__
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{owner}.load_state_dict: expected a dict with keys 'state' and 'param_groups', got "
                             f"{sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{owner}.load_state_dict: the state dict has {len(saved_groups)} parameter groups, "
                             f"this optimizer {len(self.param_groups)}")
        params_by_index: dict[int, Tensor] = {}
        for number, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{owner}.load_state_dict: parameter group {number} has {len(saved['params'])} "
                                 f"parameters in the state dict, {len(group['params'])} in this optimizer")
            params_by_index.update(zip(saved["params"], group["params"]))
        new_state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        for index, values in state_dict["state"].items():
            if index not in params_by_index:
                raise ValueError(f"{owner}.load_state_dict: state for parameter {index}, which no group lists")
            param = params_by_index[index]
            new_state[param] = {name: _restore(owner, index, name, value, param) for name, value in values.items()}
        for saved, group in zip(saved_groups, self.param_groups):
            group.update({key: value for key, value in saved.items() if key != "params"})
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for number, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {number}")
            lines.extend(f"    {key}: {value}" for key, value in sorted(group.items()) if key != "params")
        return "\n".join(lines + [")"])


def _restore(owner: str, index: int, name: str, value: Any, param: Tensor) -> Any:
    """A saved state value ready for use: arrays copied onto the parameter's device (floating ones in its dtype),
    numbers as they are."""
    if isinstance(value, Tensor):
        value = value.data
    per_element = param.ndim == 0 and getattr(value, "dtype", None) is not None and value.dtype.kind == "f"
    if isinstance(value, numpy.generic) or (isinstance(value, numpy.ndarray) and value.ndim == 0
                                            and not per_element):  # a number (a step count), not a 0-d state
        return value.item()
    if not hasattr(value, "shape"):
        return value
    if value.dtype.kind == "f":
        if tuple(value.shape) != tuple(param.shape):
            raise ValueError(f"{owner}.load_state_dict: state {name!r} of parameter {index} has shape "
                             f"{tuple(value.shape)}, the parameter {tuple(param.shape)}")
    moved = to_device(value, param.device)
    return moved.astype(param.dtype) if moved.dtype.kind == "f" else moved.copy()
