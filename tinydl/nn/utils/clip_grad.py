"""Gradient clipping by global norm."""
from __future__ import annotations

from typing import Iterable

from ...autograd import no_grad
from ...backend import device_scope, get_array_module
from ...tensor import Tensor

__all__ = ["clip_grad_norm_"]


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale the gradients of ``parameters`` together so that their joint norm is at most ``max_norm``.

    The joint norm is ||(||g_1||_p, ..., ||g_k||_p)||_p (the p-norm of all gradients concatenated; p = inf gives the
    largest |g|). Every gradient is multiplied by min(1, max_norm / (norm + 1e-6)), computed where the gradients
    live (on a GPU nothing is read back, so the step does not wait for the device; ``error_if_nonfinite=True``
    does read the norm). Returns the joint norm before clipping, as a 0-d Tensor.
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    norm_type = float(norm_type)
    if max_norm < 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be non-negative, got {max_norm}")
    if norm_type <= 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be positive (or inf), got {norm_type}")
    if not grads:
        return Tensor(get_array_module(*params).zeros(()))
    xp = get_array_module(grads[0])
    with no_grad(), device_scope(grads[0].data):
        norms = xp.stack([xp.linalg.norm(g.data.reshape(-1), ord=norm_type) for g in grads])
        total = xp.linalg.norm(norms, ord=norm_type)
        if error_if_nonfinite and not bool(xp.isfinite(total)):
            raise RuntimeError(f"clip_grad_norm_: the total {norm_type}-norm of the gradients is {float(total)}; "
                               "pass error_if_nonfinite=False to clip anyway")
        scale = xp.minimum(max_norm / (total + 1e-6), 1.0)  # stays on the device: reading it would synchronise
        for g in grads:
            g.data = g.data * scale.astype(g.dtype)
    return Tensor(xp.asarray(total))
