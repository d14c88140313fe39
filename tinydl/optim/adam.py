"""Adam and AdamW: gradient descent scaled by running estimates of the gradient's first and second moments."""
from __future__ import annotations

import math
from typing import Any, Iterable

from ..backend import get_array_module
from ..kernels.cuda import optim as fused
from ..kernels.cuda.build import can_fuse, contiguous
from .optimizer import Optimizer, _check_non_negative, add_scaled, effective_gradient

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """One step t = 1, 2, ... for the gradient g of a parameter p (Kingma & Ba, 2015, as PyTorch computes it):

        p = p * (1 - lr * weight_decay)              (AdamW: decoupled weight decay), or
        g = g + weight_decay * p                     (Adam: L2 regularisation); -g in place of g when maximize
        m = m + (1 - beta1) * (g - m)                first moment, m_0 = 0
        v = beta2 * v + (1 - beta2) * g^2            second moment, v_0 = 0
        v_max = max(v_max, v)                        (amsgrad: use v_max below in place of v)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    On a GPU with fusion on, the step is one CUDA kernel (:func:`tinydl.kernels.cuda.optim.adam_step`).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=decoupled_weight_decay))

    def _check_options(self, group: dict[str, Any]) -> None:
        super()._check_options(group)
        owner = type(self).__name__
        _check_non_negative(owner, "epsilon (eps)", group["eps"])
        _check_non_negative(owner, "weight_decay", group["weight_decay"])
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}")
        for position, beta in enumerate(betas):
            if not isinstance(beta, (int, float)) or not 0.0 <= beta < 1.0:
                raise ValueError(f"{owner}: invalid betas[{position}] {beta!r}; it must be in [0, 1)")

    def _update(self, param: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        xp = get_array_module(param)
        beta1, beta2 = group["betas"]
        lr, weight_decay, amsgrad = group["lr"], group["weight_decay"], group["amsgrad"]
        decoupled = group["decoupled_weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros(param.shape, dtype=param.dtype)
            state["exp_avg_sq"] = xp.zeros(param.shape, dtype=param.dtype)
            if amsgrad:
                state["max_exp_avg_sq"] = xp.zeros(param.shape, dtype=param.dtype)
        state["step"] += 1
        step_size = lr / (1 - beta1 ** state["step"])
        bias_correction2_sqrt = math.sqrt(1 - beta2 ** state["step"])
        arrays = (param, grad, state["exp_avg"], state["exp_avg_sq"]) + (
            (state["max_exp_avg_sq"],) if amsgrad else ())
        if can_fuse(*arrays) and contiguous(param, *arrays[2:]):  # the whole step in one CUDA kernel
            fused.adam_step(param, grad, *arrays[2:4], arrays[4] if amsgrad else None, lr=lr, beta1=beta1,
                            beta2=beta2, eps=group["eps"], weight_decay=weight_decay, step_size=step_size,
                            bias_correction2_sqrt=bias_correction2_sqrt, decoupled=decoupled,
                            maximize=group["maximize"])
            return
        for gradient_scratch, scratch, p, g, m, v, *v_max in self._workspace.blocks(*arrays):
            if decoupled and weight_decay != 0:
                p *= 1 - lr * weight_decay
            g = effective_gradient(p, g, 0.0 if decoupled else weight_decay, group["maximize"], gradient_scratch)
            xp.subtract(g, m, out=scratch)
            add_scaled(m, scratch, 1 - beta1, scratch)
            v *= beta2
            xp.multiply(g, g, out=scratch)
            add_scaled(v, scratch, 1 - beta2, scratch)
            if amsgrad:
                xp.maximum(v_max[0], v, out=v_max[0])
            xp.sqrt(v_max[0] if amsgrad else v, out=scratch)
            scratch /= bias_correction2_sqrt
            scratch += group["eps"]
            xp.divide(m, scratch, out=scratch)
            add_scaled(p, scratch, -step_size, scratch)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): p = p * (1 - lr * weight_decay) before the
    Adam step, instead of adding weight_decay * p to the gradient. Default weight_decay 1e-2, as in PyTorch."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize, decoupled_weight_decay=True)
