"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay."""
from __future__ import annotations

from typing import Any, Iterable

from ..backend import get_array_module
from ..kernels.cuda import optim as fused
from ..kernels.cuda.build import can_fuse, contiguous
from .optimizer import Optimizer, _check_non_negative, add_scaled, effective_gradient

__all__ = ["SGD"]


class SGD(Optimizer):
    """One step, for the gradient g of a parameter p (PyTorch's formulation):

        d = g + weight_decay * p                     (with -g in place of g when maximize)
        b = d at the first step, else momentum * b + (1 - dampening) * d       } when momentum != 0
        d = d + momentum * b with nesterov, else d = b                        }
        p = p - lr * d

    With momentum, on a GPU with fusion on, the step is one CUDA kernel
    (:func:`tinydl.kernels.cuda.optim.sgd_momentum_step`).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _check_options(self, group: dict[str, Any]) -> None:
        super()._check_options(group)
        for name in ("momentum", "dampening", "weight_decay"):
            _check_non_negative("SGD", name, group[name])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: nesterov momentum needs momentum > 0 and dampening = 0, got momentum "
                             f"{group['momentum']} and dampening {group['dampening']}")

    def _update(self, param: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        momentum, dampening = group["momentum"], group["dampening"]
        arrays = (param, grad)
        first_step = False
        if momentum != 0:
            first_step = "momentum_buffer" not in state
            if first_step:
                state["momentum_buffer"] = get_array_module(param).empty(param.shape, dtype=param.dtype)
            arrays += (state["momentum_buffer"],)
            if can_fuse(*arrays) and contiguous(param, arrays[2]):  # the whole step in one CUDA kernel
                fused.sgd_momentum_step(param, grad, arrays[2], lr=group["lr"], momentum=momentum,
                                        dampening=dampening, weight_decay=group["weight_decay"],
                                        first_step=first_step, nesterov=group["nesterov"],
                                        maximize=group["maximize"])
                return
        for gradient_scratch, scratch, p, g, *buffer in self._workspace.blocks(*arrays):
            direction = effective_gradient(p, g, group["weight_decay"], group["maximize"], gradient_scratch)
            if momentum != 0:
                b = buffer[0]
                if first_step:
                    b[...] = direction
                else:
                    b *= momentum
                    add_scaled(b, direction, 1.0 - dampening, scratch)
                if group["nesterov"]:
                    get_array_module(p).multiply(b, momentum, out=scratch)
                    scratch += direction
                    direction = scratch
                else:
                    direction = b
            add_scaled(p, direction, -group["lr"], scratch)
