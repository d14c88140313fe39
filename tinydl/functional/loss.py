"""Loss functions with PyTorch's names, arguments and reductions: cross-entropy (fused with the log-softmax),
negative log-likelihood, mean squared error and binary cross-entropy on logits.

Class-index losses share one description of the targets, :class:`ClassTargets`: for sample i with target t_i
(the classes lie along axis 1 of the input), class weights w and label smoothing e over C classes, the target
distribution is

    q_ic = (1 - e) w_c [c = t_i] + (e / C) w_c        (q_i = 0 when t_i == ignore_index)

and the loss of sample i is -sum_c q_ic z_ic, with z the log-probabilities. "mean" divides the summed loss by
sum_i w_{t_i} over the samples that are not ignored, PyTorch's rule (also with label smoothing).
"""
from __future__ import annotations

import math
import warnings
from typing import Any

from ..autograd import Function
from ..backend import device_of, get_array_module
from ..costs import elementwise
from ..kernels.cuda import softmax as fused
from ..kernels.cuda.build import can_fuse
from ..tensor import Tensor
from ._checks import check_values_now
from ._device import on_the_inputs_device
from ._operands import check_broadcast, operands, to_tensor
from .activation import log_softmax, sigmoid, softmax
from .reduction import sum

__all__ = ["cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy_with_logits"]

_REDUCTIONS = ("none", "mean", "sum")


class ClassTargets:
    """Integer class targets as the weighted target distribution q of the module docstring, kept sparse.

    ``flat`` holds, per sample, the position of its target class in the flattened (C-contiguous) input, so that
    picking ``z[i, t_i]`` for every sample is one gather and subtracting from the gradient one scatter.
    """

    def __init__(self, op: str, input_shape: tuple[int, ...], target: Any, weight: Any, ignore_index: int,
                 label_smoothing: float, dtype: Any):
        xp = get_array_module(target)
        samples, classes = input_shape[0], input_shape[1]
        valid = target != ignore_index
        safe_target = xp.where(valid, target, 0)
        _check_class_range(op, safe_target, classes, ignore_index)
        inner = math.prod(input_shape[2:])
        rows = xp.arange(samples).reshape(samples, 1) * classes
        positions = (rows + safe_target.reshape(samples, inner)) * inner + xp.arange(inner)
        self.flat = positions.reshape(target.shape)
        self.index = safe_target  # t_i, with ignored targets replaced by 0 (their weight is 0)
        valid = valid.astype(dtype)
        target_weight = valid if weight is None else weight[safe_target] * valid
        self.normaliser = target_weight.sum()
        self.on_target = target_weight * (1 - label_smoothing) if label_smoothing else target_weight
        self.smoothing = label_smoothing
        self.class_profile = None if weight is None else weight.reshape((classes,) + (1,) * (len(input_shape) - 2))
        self.total = self.on_target  # r_i = sum_c q_ic
        if label_smoothing:
            self.spread = valid * (label_smoothing / classes)
            self.total = self.total + self.spread * (classes if weight is None else weight.sum())

    def dot(self, values: Any) -> Any:
        """sum_c q_ic values_ic for every sample i; ``values`` is an array or a Tensor (then differentiable)."""
        result = values.reshape(-1)[self.flat] * self.on_target
        if self.smoothing:
            profile = values if self.class_profile is None else values * self.class_profile
            result = result + profile.sum(1) * self.spread
        return result

    def subtract_from(self, grad: Any, scale: Any) -> None:
        """In place on a C-contiguous array: grad_ic -= q_ic * scale_i."""
        flat_grad = grad.reshape(-1)
        flat_grad[self.flat] -= self.on_target * scale
        if self.smoothing:
            spread = (self.spread * scale)[:, None]
            grad -= spread if self.class_profile is None else spread * self.class_profile

    def sample_scale(self, gy: Any, reduction: str) -> Any:
        """a_i, the factor of sample i's gradient: gy_i, gy, or gy / normaliser (0/0 read as 0, as PyTorch)."""
        if reduction != "mean":
            return gy
        xp = get_array_module(gy)
        return gy / xp.where(self.normaliser == 0, 1, self.normaliser)


def _check_class_range(op: str, safe_target: Any, classes: int, ignore_index: int) -> None:
    """``safe_target``: the targets with the ignored ones replaced by 0, so any value outside [0, C) is wrong.
    On a GPU only under detect_anomaly (see :mod:`._checks`)."""
    if safe_target.size and check_values_now(safe_target) and (safe_target.min() < 0 or
                                                               safe_target.max() >= classes):
        bad = int(safe_target[(safe_target < 0) | (safe_target >= classes)].reshape(-1)[0])
        raise IndexError(f"{op}: target {bad} is out of range for {classes} classes (valid targets are "
                         f"0..{classes - 1}, or ignore_index={ignore_index})")


def _reduce(losses: Any, reduction: str, normaliser: Any) -> Any:
    """The per-sample losses, their sum, or their sum over ``normaliser`` (arrays or Tensors alike)."""
    if reduction == "none":
        return losses
    total = losses.sum()
    return total / normaliser if reduction == "mean" else total


class CrossEntropy(Function):
    """Cross-entropy of logits x (classes along axis 1) against integer targets, fused with the log-softmax.

    With u = x - max_c x_c (so that nothing overflows), E = e^u, S_i = sum_c E_ic and r_i = sum_c q_ic, the
    log-probabilities are z = u - log S, so the loss of sample i is
        -sum_c q_ic z_ic = r_i log S_i - sum_c q_ic u_ic,
    which needs no full-size log-probability array. Backward, with the softmax p = E / S and a_i the sample's
    factor (gy_i, gy, or gy / normaliser):  dx_ic = a_i (p_ic r_i - q_ic), from the saved E and S.

    On a GPU with fusion on, (N, C) logits without class weights take the fused row kernels of
    :mod:`tinydl.kernels.cuda.softmax`, which save only m + log S per sample.
    """

    saved_inputs, saves_outputs = (0,), False

    name = "cross_entropy"

    def flops(self, inputs, outputs):
        """max, subtract, exp, sum and the target dot (2) per logit; log and the rest per sample."""
        return 6 * inputs[0].size + 3 * inputs[0].shape[0]

    def __init__(self, targets: ClassTargets, reduction: str):
        self.targets, self.reduction = targets, reduction
        self.exp_shifted = self.sums = self.log_normaliser = None

    def forward(self, x):
        if fusable_cross_entropy(x, self.targets):
            losses, self.log_normaliser = fused.cross_entropy_forward(x, self.targets.index, self.targets.on_target,
                                                                      _spread(self.targets))
            return _reduce(losses, self.reduction, self.targets.normaliser)
        xp = get_array_module(x)
        x = xp.ascontiguousarray(x)
        shifted = x - x.max(axis=1, keepdims=True)
        self.exp_shifted = xp.exp(shifted)
        self.sums = self.exp_shifted.sum(axis=1)
        losses = self.targets.total * xp.log(self.sums) - self.targets.dot(shifted)
        return _reduce(losses, self.reduction, self.targets.normaliser)

    def backward(self, gy):
        saved = (self.exp_shifted, self.sums, self.log_normaliser)
        return CrossEntropyBackward(self.targets, *saved, self.reduction)(self.inputs[0], gy)


def fusable_cross_entropy(x: Any, targets: ClassTargets, *more: Any) -> bool:
    """Whether the fused kernels apply: CuPy arrays with fusion on, (N, C) logits, no class weights."""
    return can_fuse(x, *more) and x.ndim == 2 and targets.class_profile is None


def _spread(targets: ClassTargets) -> Any:
    """The per-sample label-smoothing share s_i (0 without smoothing)."""
    return targets.spread if targets.smoothing else 0.0


class CrossEntropyBackward(Function):
    """dx = a (p r - q) with p = E / S from the forward pass (see :class:`CrossEntropy`).

    Its own derivative, written with tinydl ops so that cross-entropy is twice differentiable: for an upstream
    v of x's shape,  d<v, dx>/dx = a r p (v - sum_c v_c p_c)  and  d<v, dx>/d(gy) = (r sum_c v_c p_c -
    sum_c v_c q_c) per sample, over the normaliser for "mean".
    """

    saved_inputs, saves_outputs = None, False

    name = "cross_entropy_backward"

    def flops(self, inputs, outputs):
        """A scaled softmax and the target subtraction per logit."""
        return 2 * inputs[0].size + 3 * inputs[0].shape[0]

    def __init__(self, targets: ClassTargets, exp_shifted: Any, sums: Any, log_normaliser: Any, reduction: str):
        """From the forward: E and S (plain path), or m + log S per sample (fused path; E and S are None)."""
        self.targets, self.exp_shifted, self.sums, self.reduction = targets, exp_shifted, sums, reduction
        self.log_normaliser = log_normaliser

    def forward(self, x, gy):
        scale = self.targets.sample_scale(gy, self.reduction)
        if self.log_normaliser is not None and fusable_cross_entropy(x, self.targets, gy):
            return fused.cross_entropy_backward(x, self.targets.index, self.targets.on_target,
                                                _spread(self.targets), self.log_normaliser, scale)
        if self.exp_shifted is None:  # the forward was fused, this backward is not: recompute E and S
            xp = get_array_module(x)
            x = xp.ascontiguousarray(x)
            shifted = x - x.max(axis=1, keepdims=True)
            self.exp_shifted = xp.exp(shifted)
            self.sums = self.exp_shifted.sum(axis=1)
        grad = self.exp_shifted * (self.targets.total * scale / self.sums)[:, None]
        self.targets.subtract_from(grad, scale)
        return grad

    def backward(self, v):
        x, gy = self.inputs
        targets = self.targets
        probs = softmax(x, 1)
        v_dot_p = sum(v * probs, 1)
        grad_x = grad_gy = None
        if self.needs_input_grad[0]:
            factor = (targets.sample_scale(gy, self.reduction) * targets.total).unsqueeze(1)
            grad_x = factor * probs * (v - v_dot_p.unsqueeze(1))
        if self.needs_input_grad[1]:
            grad_gy = targets.sample_scale(v_dot_p * targets.total - targets.dot(v), self.reduction)
        return grad_x, grad_gy


class LogSigmoid(Function):
    """y = log sigmoid(x) = min(x, 0) - log(1 + e^-|x|) (no overflow for any x);  dx = gy * sigmoid(-x)."""

    saved_inputs, saves_outputs = (0,), False

    name = "log_sigmoid"
    flops = elementwise(6)  # min, abs, negate, exp, log1p, subtract

    def forward(self, x):
        xp = get_array_module(x)
        return xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, gy):
        return gy * sigmoid(-self.inputs[0])


# ------------------------------------------------------------------------------------------ public functions
@on_the_inputs_device
def cross_entropy(input: Tensor, target: Any, weight: Tensor | None = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy between logits ``input`` (N, C) or (N, C, d1, ...) (or one unbatched sample (C,)) and
    ``target``: class indices of shape (N, d1, ...), or class probabilities of the input's shape.

    Equals ``nll_loss(log_softmax(input, 1), target, ...)`` with label smoothing, computed in one fused kernel
    for class indices. ``weight`` (C,) rescales each class; targets equal to ``ignore_index`` contribute nothing;
    ``label_smoothing`` e mixes the target with the uniform distribution: (1 - e) onehot + e / C.
    """
    op = "cross_entropy"
    _check_reduction(op, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    _check_floating(op, input)
    target = to_tensor(target)
    if input.ndim == 1:
        loss = cross_entropy(input.unsqueeze(0), target.unsqueeze(0), weight, ignore_index, reduction,
                             label_smoothing)
        return loss.reshape(()) if reduction == "none" else loss
    _check_batched(op, input)
    weight = None if weight is None else to_tensor(weight)
    weight_data = _class_weight(op, input, weight)
    if target.dtype.kind == "f" and target.shape == input.shape:
        if ignore_index >= 0:
            raise ValueError(f"{op}: ignore_index={ignore_index} is not supported for class-probability targets")
        return _cross_entropy_probabilities(input, target, weight, reduction, label_smoothing)
    targets = ClassTargets(op, input.shape, _class_indices(op, input, target), weight_data, ignore_index,
                           label_smoothing, input.dtype)
    return CrossEntropy(targets, reduction)(input)


def _cross_entropy_probabilities(input: Tensor, target: Tensor, weight: Tensor | None, reduction: str,
                                 label_smoothing: float) -> Tensor:
    """-sum_c w_c q_ic log p_ic with q = (1 - e) target + e / C; "mean" averages over the N * d1 * ... samples."""
    if target.dtype != input.dtype:
        raise TypeError(f"cross_entropy: class-probability target has dtype {target.dtype} but the input has "
                        f"{input.dtype}")
    classes = input.shape[1]
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / classes
    if weight is not None:
        target = target * weight.reshape((classes,) + (1,) * (input.ndim - 2))
    losses = -sum(log_softmax(input, 1) * target, 1)
    return _reduce(losses, reduction, losses.size)


@on_the_inputs_device
def nll_loss(input: Tensor, target: Any, weight: Tensor | None = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: -w_{t_i} input[i, t_i] for log-probabilities ``input`` (N, C) or (N, C, d1, ...)
    (or (C,)) and class indices ``target`` (N, d1, ...); ``weight``, ``ignore_index`` and the "mean" rule as in
    :func:`cross_entropy`."""
    op = "nll_loss"
    _check_reduction(op, reduction)
    _check_floating(op, input)
    target = to_tensor(target)
    if input.ndim == 1:
        loss = nll_loss(input.unsqueeze(0), target.unsqueeze(0), weight, ignore_index, reduction)
        return loss.reshape(()) if reduction == "none" else loss
    _check_batched(op, input)
    targets = ClassTargets(op, input.shape, _class_indices(op, input, target), _class_weight(op, input, weight),
                           ignore_index, 0.0, input.dtype)
    return _reduce(-targets.dot(input), reduction, targets.normaliser)


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error (input - target)^2, reduced; shapes that differ are broadcast with a warning, as in
    PyTorch."""
    _check_reduction("mse_loss", reduction)
    input, target = operands("mse_loss", input, target)
    check_broadcast("mse_loss", input, target)
    if input.shape != target.shape:
        warnings.warn(f"mse_loss: target shape {tuple(target.shape)} differs from input shape "
                      f"{tuple(input.shape)}; they are broadcast together, which is rarely what is meant",
                      stacklevel=2)
    difference = input - target
    squares = difference * difference
    return _reduce(squares, reduction, squares.size)


def binary_cross_entropy_with_logits(input: Tensor, target: Any, weight: Tensor | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """-w [pw t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))], computed as w [(1 - t) x - (1 + (pw - 1) t)
    log sigmoid(x)] so that no logit overflows; ``weight`` broadcasts to the input, ``pos_weight`` (weights of the
    positive class) to its last dimension."""
    op = "binary_cross_entropy_with_logits"
    _check_reduction(op, reduction)
    _check_floating(op, input)
    input, target = operands(op, input, target)
    if target.shape != input.shape:
        raise ValueError(f"{op}: target shape {tuple(target.shape)} must equal the input shape "
                         f"{tuple(input.shape)}")
    log_weight = 1 if pos_weight is None else 1 + (pos_weight - 1) * target
    losses = (1 - target) * input - log_weight * LogSigmoid()(input)
    if weight is not None:
        losses = losses * weight
    return _reduce(losses, reduction, losses.size)


# ----------------------------------------------------------------------------------------------- validation
def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_floating(op: str, input: Tensor) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected the input to be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point input, got dtype {input.dtype}")


def _check_batched(op: str, input: Tensor) -> None:
    if input.shape[1] == 0:
        raise ValueError(f"{op}: the input of shape {tuple(input.shape)} has no classes along dimension 1")


def _class_indices(op: str, input: Tensor, target: Tensor) -> Any:
    """The raw integer target array, checked against the input's shape and device."""
    expected = input.shape[:1] + input.shape[2:]
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected class indices of an integer dtype (int64) and shape {expected}, or class "
                        f"probabilities of the input's shape {tuple(input.shape)}; got a target of dtype "
                        f"{target.dtype} and shape {tuple(target.shape)}")
    if target.shape != expected:
        raise ValueError(f"{op}: input of shape {tuple(input.shape)} needs class indices of shape {expected}, "
                         f"got target of shape {tuple(target.shape)}")
    if device_of(target.data) != device_of(input.data):
        raise RuntimeError(f"{op}: target is on {target.device} but the input is on {input.device}")
    return target.data


def _class_weight(op: str, input: Tensor, weight: Tensor | None) -> Any:
    """The raw class-weight array (or None), checked against the number of classes, dtype and device."""
    if weight is None:
        return None
    weight = to_tensor(weight)
    classes = input.shape[1]
    if weight.shape != (classes,):
        raise ValueError(f"{op}: weight must have shape ({classes},), one per class, got {tuple(weight.shape)}")
    if weight.dtype != input.dtype:
        raise TypeError(f"{op}: weight has dtype {weight.dtype} but the input has {input.dtype}; convert one")
    if weight.device != input.device:
        raise RuntimeError(f"{op}: weight is on {weight.device} but the input is on {input.device}")
    return weight.data
