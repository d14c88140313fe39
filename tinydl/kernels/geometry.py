"""The geometry of sliding windows: argument checking, output sizes, padding.

A window of ``k`` taps with dilation ``d`` spans ``d (k - 1) + 1`` input positions; sliding it with stride ``s``
over ``n`` positions (after padding) gives ``floor((n - d (k - 1) - 1) / s) + 1`` outputs. Convolution and
pooling share that rule; pooling adds PyTorch's ``ceil_mode``, where a last, partial window counts as long as it
starts inside the input or its left padding.
"""
from __future__ import annotations

import dataclasses
import numbers
from typing import Any

Pair = tuple[int, int]

__all__ = ["pair", "Conv2dGeometry", "Pool2dGeometry", "window_span"]


def pair(op: str, name: str, value: Any, minimum: int) -> Pair:
    """``value`` (an int or a sequence of two ints) as a (height, width) pair, each at least ``minimum``.

    Raises TypeError for anything but integers and ValueError for values below ``minimum``, naming the op.
    """
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if min(values) < minimum:
        bound = "positive" if minimum == 1 else f"at least {minimum}"
        raise ValueError(f"{op}: {name} must be {bound}, got {value!r}")
    return int(values[0]), int(values[1])


def window_span(kernel: int, dilation: int = 1) -> int:
    """How many input positions one window covers."""
    return dilation * (kernel - 1) + 1


@dataclasses.dataclass(frozen=True)
class Conv2dGeometry:
    """How a convolution slides its kernel: stride, padding ((top, bottom), (left, right)), dilation, groups."""

    stride: Pair = (1, 1)
    padding: tuple[Pair, Pair] = ((0, 0), (0, 0))
    dilation: Pair = (1, 1)
    groups: int = 1

    def padded_size(self, height: int, width: int) -> Pair:
        (top, bottom), (left, right) = self.padding
        return height + top + bottom, width + left + right

    def output_size(self, height: int, width: int, kernel: Pair, op: str = "conv2d") -> Pair:
        """(OH, OW) for an input of ``height x width`` and a kernel of ``kernel`` taps; at least 1 each, or
        ValueError (naming ``op``) when the (dilated) kernel does not fit the padded input."""
        padded = self.padded_size(height, width)
        spans = [window_span(k, d) for k, d in zip(kernel, self.dilation)]
        if any(span > size for span, size in zip(spans, padded)):
            raise ValueError(f"{op}: the kernel of size {kernel[0]}x{kernel[1]} (dilated to {spans[0]}x{spans[1]})"
                             f" is larger than the padded input of size {padded[0]}x{padded[1]} (input "
                             f"{height}x{width}, padding {self.padding})")
        return tuple((size - span) // s + 1 for size, span, s in zip(padded, spans, self.stride))  # type: ignore


@dataclasses.dataclass(frozen=True)
class Pool2dGeometry:
    """How a pooling window slides: kernel size, stride, symmetric padding, ceil_mode (PyTorch's rules)."""

    kernel_size: Pair
    stride: Pair
    padding: Pair = (0, 0)
    ceil_mode: bool = False

    def output_size(self, height: int, width: int, op: str = "pool2d") -> Pair:
        """(OH, OW); ValueError (naming ``op``) when no window fits."""
        sizes = []
        for size, k, s, p in zip((height, width), self.kernel_size, self.stride, self.padding):
            reach = size + 2 * p - k
            if reach < 0:
                raise ValueError(f"{op}: the window of size {self.kernel_size[0]}x{self.kernel_size[1]} is larger "
                                 f"than the padded input of size {height + 2 * self.padding[0]}x"
                                 f"{width + 2 * self.padding[1]} (input {height}x{width}, padding {self.padding})")
            count = (reach + (s - 1 if self.ceil_mode else 0)) // s + 1
            if self.ceil_mode and (count - 1) * s >= size + p:  # the last window would start in the right padding
                count -= 1
            sizes.append(count)
        return sizes[0], sizes[1]

    def padded_size(self, height: int, width: int) -> Pair:
        """The extent that every window lies in: the input, its padding, and (ceil_mode) a partial last window."""
        out = self.output_size(height, width)
        return tuple(max(size + 2 * p, (o - 1) * s + k)  # type: ignore
                     for size, p, o, s, k in zip((height, width), self.padding, out, self.stride, self.kernel_size))

    @property
    def overlapping(self) -> bool:
        """Whether some input position lies in two windows (its gradient then sums several contributions)."""
        return any(s < k for s, k in zip(self.stride, self.kernel_size))

    def tiles(self, height: int, width: int) -> bool:
        """Whether the windows tile the input exactly: no overlap, no gap, no padding (every position is in
        exactly one window, so the backward pass can assign instead of accumulate)."""
        return (self.stride == self.kernel_size and self.padding == (0, 0) and height % self.kernel_size[0] == 0
                and width % self.kernel_size[1] == 0)
