"""Module hooks, with PyTorch's signatures: forward pre-hooks, forward hooks and full backward hooks.

A module's full backward hook needs the gradients of all of the module's inputs at once, and those of its outputs.
As in PyTorch, ``Module.__call__`` routes the module's inputs and outputs through an identity node
(:class:`ModuleBoundary`) whose backward receives all of them together.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..autograd import Function, is_grad_enabled
from ..costs import moves_only, views
from ..hooks import RemovableHandle, hook_name

if TYPE_CHECKING:  # pragma: no cover
    from .module import Module

__all__ = ["ModuleBoundary", "call_module", "register_module_hook"]


class ModuleBoundary(Function):
    """Identity on n tensors whose backward hands all n gradients at once to ``on_backward`` (which may replace
    them): how a full backward hook sees a module's grad_input and grad_output."""

    name = "backward_hook"
    flops = moves_only
    bytes_moved = views

    def __init__(self, on_backward: Callable[[tuple], tuple]):
        self.on_backward = on_backward

    def forward(self, *arrays):
        return tuple(arrays)

    def backward(self, *grads):
        return tuple(self.on_backward(tuple(grads)))


def call_module(module: "Module", args: tuple, kwargs: dict) -> Any:
    """``module(*args, **kwargs)`` with its forward pre-hooks, forward hooks and full backward hooks."""
    for hook in list(module._forward_pre_hooks.values()):
        result = hook(module, args)
        if result is not None:
            args = result if isinstance(result, tuple) else (result,)
    backward_hooks = module._backward_hooks
    capture = None
    if backward_hooks and is_grad_enabled():
        capture = _BackwardCapture(module, args)
        args = capture.wrap_inputs(args)
    output = module.forward(*args, **kwargs)
    for hook in list(module._forward_hooks.values()):
        result = hook(module, args, output)
        if result is not None:
            output = result
    if capture is not None:
        output = capture.wrap_outputs(output)
    return output


class _BackwardCapture:
    """One module call's grad_output (from the boundary after the outputs) and grad_input (from the boundary
    before the inputs); calls the module's backward hooks when both are known."""

    def __init__(self, module: "Module", args: tuple):
        self.module = module
        self.tensor_args = [i for i, a in enumerate(args) if hasattr(a, "_creator")]
        self.grad_args = [i for i in self.tensor_args if args[i].requires_grad]
        self.grad_output: tuple = ()

    def wrap_inputs(self, args: tuple) -> tuple:
        if not self.grad_args:
            return args
        routed = ModuleBoundary(self._inputs_done)(*[args[i] for i in self.grad_args])
        args = list(args)
        for position, tensor in zip(self.grad_args, routed):
            args[position] = tensor
        return tuple(args)

    def wrap_outputs(self, output: Any) -> Any:
        """Route the output Tensors that require grad (a Tensor, or those in a tuple or list) through the
        boundary; anything else passes as it is."""
        single = hasattr(output, "_creator")
        outputs = [output] if single else list(output) if isinstance(output, (tuple, list)) else []
        positions = [i for i, o in enumerate(outputs) if hasattr(o, "_creator") and o.requires_grad]
        if not positions:
            return output
        routed = ModuleBoundary(self._outputs_done)(*[outputs[i] for i in positions])
        for position, tensor in zip(positions, routed):
            outputs[position] = tensor
        return outputs[0] if single else type(output)(outputs)

    def _outputs_done(self, grads: tuple) -> tuple:
        self.grad_output = grads
        if not self.grad_args:
            self._call_hooks(tuple(None for _ in self.tensor_args))
        return grads

    def _inputs_done(self, grads: tuple) -> tuple:
        by_position = dict(zip(self.grad_args, grads))
        grad_input = tuple(by_position.get(i) for i in self.tensor_args)
        grad_input = self._call_hooks(grad_input)
        return tuple(grad_input[self.tensor_args.index(i)] for i in self.grad_args)

    def _call_hooks(self, grad_input: tuple) -> tuple:
        for hook in list(self.module._backward_hooks.values()):
            result = hook(self.module, grad_input, self.grad_output)
            if result is None:
                continue
            result = tuple(result) if isinstance(result, (tuple, list)) else (result,)
            if len(result) != len(grad_input):
                raise RuntimeError(f"register_full_backward_hook: the hook {hook_name(hook)} of "
                                   f"{type(self.module).__name__} returned {len(result)} gradients for "
                                   f"{len(grad_input)} inputs")
            for new, old in zip(result, grad_input):
                if new is not None and old is not None and (new.shape != old.shape or new.dtype != old.dtype):
                    raise RuntimeError(f"register_full_backward_hook: the hook {hook_name(hook)} of "
                                       f"{type(self.module).__name__} returned a grad_input of shape "
                                       f"{tuple(new.shape)} {new.dtype}; expected shape {tuple(old.shape)} and "
                                       f"dtype {old.dtype}")
            grad_input = result
        return grad_input


def register_module_hook(registry: dict[int, Callable], hook: Callable, kind: str) -> RemovableHandle:
    if not callable(hook):
        raise TypeError(f"{kind}: expected a callable, got {type(hook).__name__}")
    handle = RemovableHandle(registry)
    registry[handle.id] = hook
    return handle
