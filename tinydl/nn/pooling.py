"""Pooling layers over NCHW images: ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d``."""
from __future__ import annotations

from typing import Any

from .. import functional as F
from ..tensor import Tensor
from .module import Module

__all__ = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]


class MaxPool2d(Module):
    """y[n, c, h, w] = max of x[n, c] over the kernel_size window at (s*h - p, s*w - p); ``stride`` defaults to
    ``kernel_size``; padding counts as -inf. (``dilation`` and ``return_indices`` keep PyTorch's argument order;
    only their defaults are supported.)"""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        if dilation not in (1, (1, 1)) or return_indices:
            raise ValueError(f"MaxPool2d: only dilation=1 and return_indices=False are supported, got dilation "
                             f"{dilation!r} and return_indices={return_indices}")
        self.kernel_size, self.stride = kernel_size, (stride if stride is not None else kernel_size)
        self.padding, self.dilation, self.ceil_mode = padding, dilation, ceil_mode

    def forward(self, input: Tensor) -> Tensor:
        return F.max_pool2d(input, self.kernel_size, stride=self.stride, padding=self.padding,
                            ceil_mode=self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """y[n, c, h, w] = mean of x[n, c] over the kernel_size window at (s*h - p, s*w - p); ``stride`` defaults to
    ``kernel_size``; padded zeros count in the divisor when ``count_include_pad`` (PyTorch's default).
    (``divisor_override`` keeps PyTorch's argument order; only its default, None, is supported.)"""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None):
        super().__init__()
        if divisor_override is not None:
            raise ValueError(f"AvgPool2d: divisor_override is not supported, got {divisor_override!r}")
        self.kernel_size, self.stride = kernel_size, (stride if stride is not None else kernel_size)
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool2d(input, self.kernel_size, stride=self.stride, padding=self.padding,
                            ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (oh, ow), whatever the input size: output cell (i, j) averages
    rows floor(i*H/oh) .. ceil((i+1)*H/oh) - 1 and the corresponding columns."""

    def __init__(self, output_size: Any):
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
