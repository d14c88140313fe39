"""Tensor hooks, with PyTorch's signatures (``register_hook``, ``retain_grad``); Module hooks are in
:mod:`tinydl.nn.hooks`. Every registration returns a :class:`RemovableHandle`.

Tensor hooks run inside the backward engine once a tensor's gradient is complete (every consumer's contribution
summed): for a non-leaf just before its creator's backward step, for a leaf just before the gradient is
accumulated into ``.grad``. The engine tests one module-level dict, :data:`tensor_hooks`, which is empty unless a
hook is registered on a live tensor.
"""
from __future__ import annotations

import itertools
import weakref
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from .tensor import Tensor

__all__ = ["RemovableHandle", "tensor_hooks", "register_tensor_hook", "retain_grad", "run_tensor_hooks",
           "run_output_hooks"]

_handle_ids = itertools.count()

# id(tensor) -> {handle id: hook}; entries leave with their tensor (a weakref finalizer)
tensor_hooks: dict[int, dict[int, Callable]] = {}


class RemovableHandle:
    """What every ``register_*`` returns: ``handle.remove()`` unregisters the hook (also usable as a context
    manager that removes it on exit)."""

    def __init__(self, registry: dict[int, Callable]):
        self.id = next(_handle_ids)
        self._registry = registry

    def remove(self) -> None:
        self._registry.pop(self.id, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()


def describe(tensor: "Tensor") -> str:
    """A tensor as error messages name it: shape, dtype and creator (or "leaf")."""
    creator = tensor._creator
    origin = f"grad_fn={creator.name}" if creator is not None else "leaf"
    path = getattr(creator, "module_path", None)
    where = f" in module {path!r}" if path else ""
    return f"tensor of shape {tuple(tensor.shape)} {tensor.dtype} ({origin}{where})"


# ------------------------------------------------------------------------------------------------ tensor hooks
def register_tensor_hook(tensor: "Tensor", hook: Callable[["Tensor"], "Tensor | None"]) -> RemovableHandle:
    """``hook(grad) -> Tensor | None`` runs when the gradient of ``tensor`` is complete; a returned Tensor
    replaces the gradient (same shape and dtype)."""
    if not tensor.requires_grad:
        raise RuntimeError(f"register_hook: cannot register a hook on a {describe(tensor)} that does not require "
                           "grad; call .requires_grad_() on the leaf first")
    if not callable(hook):
        raise TypeError(f"register_hook: expected a callable, got {type(hook).__name__}")
    key = id(tensor)
    hooks = tensor_hooks.get(key)
    if hooks is None:
        hooks = tensor_hooks[key] = {}
        weakref.finalize(tensor, tensor_hooks.pop, key, None)
    handle = RemovableHandle(hooks)
    hooks[handle.id] = hook
    return handle


class _RetainGrad:
    """The hook behind ``retain_grad()``: stores (accumulates) a non-leaf's gradient in its ``.grad``."""

    def __init__(self, tensor: "Tensor"):
        self.tensor = weakref.ref(tensor)

    def __call__(self, grad: "Tensor") -> None:
        tensor = self.tensor()
        if tensor is not None:
            tensor.grad = grad if tensor.grad is None else tensor.grad + grad


def retain_grad(tensor: "Tensor") -> None:
    """Keep the gradient of a non-leaf in ``.grad`` after backward (a leaf keeps it anyway)."""
    if not tensor.requires_grad:
        raise RuntimeError(f"retain_grad: cannot retain the grad of a {describe(tensor)} that does not require "
                           "grad")
    if tensor._creator is None:
        return
    if any(isinstance(hook, _RetainGrad) for hook in tensor_hooks.get(id(tensor), {}).values()):
        return
    register_tensor_hook(tensor, _RetainGrad(tensor))


def run_tensor_hooks(tensor: "Tensor", grad: "Tensor") -> "Tensor":
    """Run ``tensor``'s hooks in registration order on its complete gradient; each may replace it."""
    for hook in list(tensor_hooks.get(id(tensor), {}).values()):
        result = hook(grad)
        if result is None:
            continue
        if not hasattr(result, "_creator"):
            raise TypeError(f"register_hook: the hook {hook_name(hook)} of the {describe(tensor)} returned a "
                            f"{type(result).__name__}; expected a Tensor or None")
        if result.shape != grad.shape or result.dtype != grad.dtype:
            raise RuntimeError(f"register_hook: the hook {hook_name(hook)} of the {describe(tensor)} returned a "
                               f"gradient of shape {tuple(result.shape)} {result.dtype}; expected shape "
                               f"{tuple(grad.shape)} and dtype {grad.dtype}")
        grad = result
    return grad


def run_output_hooks(grads: list, outputs: list) -> list:
    """The gradients of a node's outputs after the hooks of those output tensors (the engine's call)."""
    return [grad if grad is None or tensor is None or id(tensor) not in tensor_hooks
            else run_tensor_hooks(tensor, grad) for grad, tensor in zip(grads, outputs)]


def hook_name(hook: Callable) -> str:
    return getattr(hook, "__qualname__", None) or type(hook).__name__
