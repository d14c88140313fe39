"""Fused optimizer steps: the whole update of one parameter in one kernel, reading p, g and the state once and
writing p and the state once (the plain path makes a dozen passes for Adam).

Adam / AdamW, step t, as :class:`tinydl.optim.Adam` states it (flags: decoupled, amsgrad, maximize):

    p = p (1 - lr wd)                           when decoupled (AdamW)
    g = -g when maximize;  g = g + wd p         when not decoupled (Adam's L2 term)
    m = m + (1 - beta1) (g - m)
    v = beta2 v + (1 - beta2) g^2
    v_max = max(v_max, v)                       when amsgrad, and v_max replaces v below
    p = p - step_size m / (sqrt(v) / bias_correction2_sqrt + eps)
        with step_size = lr / (1 - beta1^t), bias_correction2_sqrt = sqrt(1 - beta2^t)

SGD with momentum (momentum != 0), as :class:`tinydl.optim.SGD` states it:

    d = g + wd p  (with -g when maximize)
    b = d at the first step, else momentum b + (1 - dampening) d
    d = d + momentum b with nesterov, else d = b
    p = p - lr d
"""
from __future__ import annotations

from typing import Any

from .build import as_contiguous, flag, kernel, launch, real, register, size

__all__ = ["adam_step", "sgd_momentum_step"]

OPTIM = register("optim", r"""
extern "C" __global__ void adam_step(real* p, const real* grad, real* m, real* v, real* v_max,
                                     real lr, real beta1, real beta2, real eps, real weight_decay,
                                     real step_size, real bias_correction2_sqrt,
                                     int decoupled, int amsgrad, int maximize, long long n) {
    FOR_EACH_INDEX(i, n) {
        real param = p[i];
        real g = maximize ? -grad[i] : grad[i];
        if (decoupled) param *= (real)1 - lr * weight_decay;
        else g += weight_decay * param;
        real first = m[i] + ((real)1 - beta1) * (g - m[i]);
        real second = beta2 * v[i] + ((real)1 - beta2) * g * g;
        m[i] = first;
        v[i] = second;
        if (amsgrad) {
            second = fmax(v_max[i], second);
            v_max[i] = second;
        }
        p[i] = param - step_size * first / (sqrt(second) / bias_correction2_sqrt + eps);
    }
}

extern "C" __global__ void sgd_momentum_step(real* p, const real* grad, real* buffer, real lr, real momentum,
                                             real dampening, real weight_decay, int first_step, int nesterov,
                                             int maximize, long long n) {
    FOR_EACH_INDEX(i, n) {
        real param = p[i];
        real d = (maximize ? -grad[i] : grad[i]) + weight_decay * param;
        real b = first_step ? d : momentum * buffer[i] + ((real)1 - dampening) * d;
        buffer[i] = b;
        p[i] = param - lr * (nesterov ? d + momentum * b : b);
    }
}
""")


def adam_step(param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any, max_exp_avg_sq: Any, *, lr: float,
              beta1: float, beta2: float, eps: float, weight_decay: float, step_size: float,
              bias_correction2_sqrt: float, decoupled: bool, maximize: bool) -> None:
    """One Adam/AdamW step in place on C-contiguous ``param`` and state arrays; ``max_exp_avg_sq`` is None
    unless amsgrad."""
    amsgrad = max_exp_avg_sq is not None
    launch(kernel(OPTIM, param.dtype.name, "adam_step"), param.size,
           (param, as_contiguous(grad), exp_avg, exp_avg_sq, max_exp_avg_sq if amsgrad else exp_avg_sq,
            *(real(param, value) for value in (lr, beta1, beta2, eps, weight_decay, step_size,
                                               bias_correction2_sqrt)),
            flag(decoupled), flag(amsgrad), flag(maximize), size(param.size)))


def sgd_momentum_step(param: Any, grad: Any, buffer: Any, *, lr: float, momentum: float, dampening: float,
                      weight_decay: float, first_step: bool, nesterov: bool, maximize: bool) -> None:
    """One SGD-with-momentum step in place on C-contiguous ``param`` and momentum ``buffer``."""
    launch(kernel(OPTIM, param.dtype.name, "sgd_momentum_step"), param.size,
           (param, as_contiguous(grad), buffer,
            *(real(param, value) for value in (lr, momentum, dampening, weight_decay)),
            flag(first_step), flag(nesterov), flag(maximize), size(param.size)))

