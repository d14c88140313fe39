"""Normalisation layers: ``BatchNorm1d``, ``BatchNorm2d`` (statistics over the batch), ``LayerNorm``
(statistics over the last dimensions of each sample) and ``RMSNorm`` (Llama's: a root-mean-square rescaling)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy

from .. import functional as F
from ..creation import ones, zeros
from ..tensor import Tensor
from .module import Module
from .parameter import Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "RMSNorm"]


class _BatchNorm(Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, per channel (dimension 1).

    In training mode, mean and (biased) var are those of the batch (over every dimension but 1), and the running
    estimates follow running = (1 - momentum) * running + momentum * batch statistic (the unbiased variance), or a
    cumulative average when ``momentum`` is None. In evaluation mode the running estimates are used. Buffers:
    ``running_mean``, ``running_var``, ``num_batches_tracked`` (PyTorch's names, so checkpoints map across).
    """

    accepted_ndims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device: Any = "cpu", dtype: Any = None, *, bias: bool = True):
        super().__init__()
        if not isinstance(num_features, int) or num_features <= 0:
            raise ValueError(f"{type(self).__name__}: num_features must be a positive int, got {num_features!r}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats, self.use_bias = affine, track_running_stats, bias
        self.weight = Parameter(ones(num_features, device=device, dtype=dtype)) if affine else None
        self.bias = Parameter(zeros(num_features, device=device, dtype=dtype)) if affine and bias else None
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, device=device, dtype=dtype))
            self.register_buffer("running_var", ones(num_features, device=device, dtype=dtype))
            self.register_buffer("num_batches_tracked", zeros((), device=device, dtype=numpy.int64))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim not in self.accepted_ndims or input.shape[1] != self.num_features:
            expected = " or ".join(f"{n}-D" for n in self.accepted_ndims)
            raise ValueError(f"{type(self).__name__}: expected a {expected} input with {self.num_features} channels "
                             f"in dimension 1, got shape {tuple(input.shape)}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.item())
        use_batch_statistics = self.training or not self.track_running_stats
        return F.batch_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                            training=use_batch_statistics, momentum=factor, eps=self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.use_bias}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs."""

    accepted_ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) images, one mean and variance per channel."""

    accepted_ndims = (4,)


class LayerNorm(Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, with mean and (biased) var over the last
    len(normalized_shape) dimensions of each sample; weight and bias have shape ``normalized_shape``."""

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device: Any = "cpu", dtype: Any = None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if not shape or not all(isinstance(size, int) and size > 0 for size in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be a positive int or a non-empty tuple of them, got "
                             f"{normalized_shape!r}")
        self.normalized_shape, self.eps, self.elementwise_affine, self.use_bias = shape, eps, elementwise_affine, bias
        self.weight = Parameter(ones(shape, device=device, dtype=dtype)) if elementwise_affine else None
        self.bias = Parameter(zeros(shape, device=device, dtype=dtype)) if elementwise_affine and bias else None

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.use_bias}")


class RMSNorm(Module):
    """y = x / sqrt(mean(x^2) + eps) * weight over the last dimension (Llama's normalisation: no centring, no
    bias); ``weight`` of shape (normalized_shape,) starts at ones."""

    def __init__(self, normalized_shape: int, eps: float = 1e-6, device: Any = "cpu", dtype: Any = None):
        super().__init__()
        if not isinstance(normalized_shape, int) or isinstance(normalized_shape, bool) or normalized_shape <= 0:
            raise ValueError(f"RMSNorm: normalized_shape must be a positive int, got {normalized_shape!r}")
        self.normalized_shape, self.eps = normalized_shape, eps
        self.weight = Parameter(ones(normalized_shape, device=device, dtype=dtype))

    def forward(self, input: Tensor) -> Tensor:
        return F.rms_norm(input, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"
