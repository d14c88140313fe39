"""``Module``: the base class of layers and models.

A Module keeps three ordered registries, filled by plain attribute assignment:

* ``_parameters``: every :class:`Parameter` assigned to an attribute (``self.weight = Parameter(...)``);
* ``_buffers``: Tensors registered with :meth:`Module.register_buffer`, state that is saved but not trained
  (BatchNorm's running statistics);
* ``_modules``: every Module assigned to an attribute (its children).

Walking these registries recursively gives ``parameters()``, ``named_modules()``, ``state_dict()`` and so on,
with PyTorch's dotted names (``features.0.weight``), so checkpoints map one to one onto PyTorch's.
"""
from __future__ import annotations

from collections import namedtuple
from typing import Any, Callable, Iterator

import numpy

from .. import versions
from ..autograd import no_grad
from ..backend import Device, device as as_device, device_of, device_scope, get_array_module, is_array, to_device
from ..events import enter_module, exit_module
from ..hooks import RemovableHandle
from ..tensor import Tensor
from .hooks import call_module, register_module_hook
from .parameter import Parameter

__all__ = ["Module", "IncompatibleKeys"]

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer: subclasses assign parameters and submodules in ``__init__`` (after calling
    ``super().__init__()``) and compute their output in ``forward``; calling the module calls ``forward``."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_pre_hooks", {})
        object.__setattr__(self, "_forward_hooks", {})
        object.__setattr__(self, "_backward_hooks", {})

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: forward() is not implemented")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        enter_module(self)  # ops recorded inside know their module path (tinydl/events.py)
        try:
            first = args[0].data if args and isinstance(args[0], Tensor) else None
            if first is None or type(first) is numpy.ndarray:
                return self._call_forward(args, kwargs)
            with device_scope(first):  # a GPU input: the module computes on that GPU (CuPy uses the current one)
                return self._call_forward(args, kwargs)
        finally:
            exit_module()

    def _call_forward(self, args: tuple, kwargs: dict) -> Any:
        """``forward``, through the module's hooks when it has any (:mod:`tinydl.nn.hooks`)."""
        if self._forward_pre_hooks or self._forward_hooks or self._backward_hooks:
            return call_module(self, args, kwargs)
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------------------------------------- hooks
    def register_forward_pre_hook(self, hook: Callable[["Module", tuple], Any]) -> RemovableHandle:
        """``hook(module, args) -> None | new args`` runs before ``forward``."""
        return register_module_hook(self._forward_pre_hooks, hook, "register_forward_pre_hook")

    def register_forward_hook(self, hook: Callable[["Module", tuple, Any], Any]) -> RemovableHandle:
        """``hook(module, args, output) -> None | new output`` runs after ``forward``."""
        return register_module_hook(self._forward_hooks, hook, "register_forward_hook")

    def register_full_backward_hook(self, hook: Callable[["Module", tuple, tuple], Any]) -> RemovableHandle:
        """``hook(module, grad_input, grad_output) -> None | new grad_input`` runs once the gradients of the
        module's tensor inputs are computed (grad_input: one entry per tensor argument, None where it needs no
        gradient; grad_output: one per output)."""
        return register_module_hook(self._backward_hooks, hook, "register_full_backward_hook")

    # ------------------------------------------------------------------------------------------ registration
    def _registry(self, name: str) -> dict:
        registry = self.__dict__.get(name)
        if registry is None:
            raise AttributeError(f"{type(self).__name__}: cannot register parameters, buffers or submodules "
                                 "before Module.__init__() has run; call super().__init__() first")
        return registry

    def _check_new_name(self, kind: str, name: Any) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: {kind} name must be a string, got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f"{type(self).__name__}: {kind} name {name!r} must be non-empty and contain no '.'")

    def _forget(self, name: str, keep: str | None = None) -> None:
        """Remove ``name`` from the instance dict and from every registry but ``keep`` (where re-registering it
        keeps its position, hence its place in ``state_dict()``)."""
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry != keep:
                self.__dict__[registry].pop(name, None)
        self.__dict__["_non_persistent_buffers"].discard(name)
        self.__dict__.pop(name, None)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or None, a declared but absent parameter such as a missing bias) as ``name``."""
        parameters = self._registry("_parameters")
        self._check_new_name("parameter", name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"{type(self).__name__}: cannot register a {type(param).__name__} as parameter "
                            f"{name!r}; wrap it in nn.Parameter")
        self._forget(name, keep="_parameters")
        parameters[name] = param
        if param is not None:
            param._name = name

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register ``tensor`` as buffer ``name``: moved by ``to()``, saved by ``state_dict()`` (unless
        ``persistent=False``), never returned by ``parameters()``."""
        buffers = self._registry("_buffers")
        self._check_new_name("buffer", name)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"{type(self).__name__}: buffer {name!r} must be a Tensor or None, got "
                            f"{type(tensor).__name__}")
        self._forget(name, keep="_buffers")
        buffers[name] = tensor
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        """Register ``module`` as the child ``name``."""
        modules = self._registry("_modules")
        self._check_new_name("module", name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: {type(module).__name__} is not a Module, cannot add it as "
                            f"child {name!r}")
        self._forget(name, keep="_modules")
        modules[name] = module
        if module is not None:  # parameter names for error messages, dotted from the outermost owner
            for path, param in module.named_parameters():
                param._name = f"{name}.{path}"

    register_module = add_module

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Parameter):
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            self.add_module(name, value)
        elif name in self.__dict__.get("_parameters", ()):
            if value is not None:
                raise TypeError(f"{type(self).__name__}: cannot assign a {type(value).__name__} to parameter "
                                f"{name!r}; assign an nn.Parameter or None")
            self._parameters[name] = None
        elif name in self.__dict__.get("_modules", ()):
            if value is not None:
                raise TypeError(f"{type(self).__name__}: cannot assign a {type(value).__name__} to child module "
                                f"{name!r}; assign a Module or None")
            self._modules[name] = None
        elif name in self.__dict__.get("_buffers", ()):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"{type(self).__name__}: cannot assign a {type(value).__name__} to buffer "
                                f"{name!r}; assign a Tensor or None")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:  # only reached when ordinary lookup fails
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__.get(registry, ()):
                self._forget(name)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    # ------------------------------------------------------------------------------------------- traversal
    def named_modules(self, memo: set[int] | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, "Module"]]:
        """This module and all its descendants, depth first, with dotted names ("" for this one); a module
        reachable along several paths is listed once unless ``remove_duplicate=False``."""
        memo = set() if memo is None else memo
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate:
                if id(module) in memo:
                    continue
                memo.add(id(module))
            yield name, module
            children = [(f"{name}.{child_name}" if name else child_name, child)
                        for child_name, child in module._modules.items() if child is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator["Module"]:
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """The direct children, each once."""
        seen: set[int] = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator["Module"]:
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry: str, prefix: str, recurse: bool,
                       remove_duplicate: bool) -> Iterator[tuple[str, Tensor]]:
        seen: set[int] = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else \
            [(prefix, self)]
        for module_prefix, module in modules:
            for name, member in getattr(module, registry).items():
                if member is None or (remove_duplicate and id(member) in seen):
                    continue
                seen.add(id(member))
                yield (f"{module_prefix}.{name}" if module_prefix else name), member

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) pairs; a parameter shared by several modules is listed once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)  # type: ignore[return-value]

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def apply(self, fn: Callable[["Module"], Any]) -> "Module":
        """Call ``fn`` on every descendant (children first) and then on this module; returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> "Module":
        """Switch this module and its descendants to training mode (or evaluation mode with ``mode=False``)."""
        if not isinstance(mode, bool):
            raise TypeError(f"{type(self).__name__}.train: mode must be a bool, got {type(mode).__name__}")
        object.__setattr__(self, "training", mode)
        for child in self.children():
            child.train(mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode: dropout off, batch norm uses its running statistics."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients of all parameters (set them to None, or to zeros with ``set_to_none=False``)."""
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad = Tensor(get_array_module(param.data).zeros(param.shape, dtype=param.dtype))

    # ------------------------------------------------------------------------------------- device and dtype
    def _apply(self, convert: Callable[[Any], Any]) -> "Module":
        """Replace the array of every parameter, gradient and buffer by ``convert(array)``, keeping the Tensor
        objects themselves (so optimizers holding them stay valid)."""
        done: set[int] = set()
        for module in self.modules():
            for tensor in list(module._parameters.values()) + list(module._buffers.values()):
                if tensor is None or id(tensor) in done:
                    continue
                done.add(id(tensor))
                converted = convert(tensor.data)
                if converted is not tensor.data:
                    tensor.data = converted
                    versions.bump(tensor)  # a graph that saved the tensor would now read other values
                if tensor.grad is not None:
                    tensor.grad = Tensor(convert(tensor.grad.data))
        return self

    def to(self, *args: Any, **kwargs: Any) -> "Module":
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)`` or ``to(tensor)`` (its device and dtype), in place.

        A dtype applies to floating-point parameters and buffers only (integer counters stay integers).
        """
        target, dtype = _parse_to_arguments(type(self).__name__, args, kwargs)

        def convert(array: Any) -> Any:
            if target is not None and device_of(array) != target:
                array = to_device(array, target)
            if dtype is not None and array.dtype.kind == "f" and array.dtype != dtype:
                array = array.astype(dtype)
            return array
        return self._apply(convert)

    def cpu(self) -> "Module":
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Module":
        return self.to(Device("cuda", index))

    def float(self) -> "Module":
        return self.to(numpy.float32)

    def double(self) -> "Module":
        return self.to(numpy.float64)

    def half(self) -> "Module":
        return self.to(numpy.float16)

    # ------------------------------------------------------------------------------------------ state dict
    def _state_entries(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """(key, Tensor) for every parameter and persistent buffer, in PyTorch's order: a module's own
        parameters, then its own buffers, then each child's entries. Shared tensors appear under every name."""
        for name, param in self._parameters.items():
            if param is not None:
                yield prefix + name, param
        for name, buffer in self._buffers.items():
            if buffer is not None and name not in self._non_persistent_buffers:
                yield prefix + name, buffer
        for name, child in self._modules.items():
            if child is not None:
                yield from child._state_entries(prefix + name + ".")

    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> dict[str, Tensor]:
        """An ordered dict from dotted names to Tensors (detached, sharing memory with the module, as in
        PyTorch; ``keep_vars=True`` returns the Parameters themselves). ``tinydl.save`` writes it."""
        return {key: tensor if keep_vars else tensor.detach() for key, tensor in self._state_entries(prefix)}

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy the values of ``state_dict`` (tinydl Tensors or NumPy/CuPy arrays) into this module's parameters
        and buffers, in place, converting to each one's dtype and device.

        Nothing is copied unless everything fits: a mis-shaped entry is always an error; with ``strict``, so are
        missing and unexpected keys. The error lists every problem at once. Returns the (missing, unexpected)
        keys, which are empty under ``strict``.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"{type(self).__name__}.load_state_dict: expected a dict of name -> tensor, got "
                            f"{type(state_dict).__name__}")
        targets = dict(self._state_entries())
        missing = [key for key in targets if key not in state_dict]
        unexpected = [key for key in state_dict if key not in targets]
        problems: list[str] = []
        arrays: dict[str, Any] = {}
        for key, target in targets.items():
            if key not in state_dict:
                continue
            array = _as_array(type(self).__name__, key, state_dict[key])
            if tuple(array.shape) != tuple(target.shape):
                problems.append(f"  {key}: shape {tuple(array.shape)} in the state dict, "
                                f"{tuple(target.shape)} in the model")
            arrays[key] = array
        if strict and missing:
            problems.insert(0, "  missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.insert(0 if not missing else 1, "  unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state dict does not fit the model:\n"
                             + "\n".join(problems))
        with no_grad():
            for key, array in arrays.items():
                target = targets[key]
                target.data[...] = to_device(array, target.device)
                versions.bump(target)
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------------------------------------- repr
    def extra_repr(self) -> str:
        """The module's own settings, shown between the parentheses of its repr; subclasses override it."""
        return ""

    def __repr__(self) -> str:
        lines = [line for line in self.extra_repr().split("\n") if line]
        for name, child in self._modules.items():
            child_text = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {child_text}")
        if not self._modules and len(lines) <= 1:
            return f"{type(self).__name__}({''.join(lines)})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


def _as_array(owner: str, key: str, value: Any) -> Any:
    """The raw array behind a state-dict value (a Tensor, or a NumPy/CuPy array or scalar)."""
    if isinstance(value, Tensor):
        return value.data
    if is_array(value):
        return value
    raise TypeError(f"{owner}.load_state_dict: entry {key!r} is a {type(value).__name__}; expected a tinydl "
                    "Tensor or a NumPy array (convert PyTorch tensors with .numpy())")


def _parse_to_arguments(owner: str, args: tuple, kwargs: dict) -> tuple[Device | None, numpy.dtype | None]:
    """The (device, dtype) that ``Module.to`` was asked for."""
    target = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    if kwargs:
        raise TypeError(f"{owner}.to: unexpected keyword arguments {sorted(kwargs)}")
    for arg in args:
        if isinstance(arg, Tensor):
            target, dtype = arg.device, arg.dtype
        elif isinstance(arg, (str, Device)) and not _is_dtype_name(arg):
            target = arg
        else:
            dtype = arg
    if dtype is not None:
        try:
            dtype = numpy.dtype(dtype)
        except TypeError as error:
            raise TypeError(f"{owner}.to: {dtype!r} is neither a device nor a dtype") from error
        if dtype.kind != "f":
            raise TypeError(f"{owner}.to: modules can only be cast to floating-point dtypes, got {dtype}")
    return (as_device(target) if target is not None else None), dtype


def _is_dtype_name(value: Any) -> bool:
    return isinstance(value, str) and value not in ("cpu", "cuda") and not value.startswith("cuda:")
