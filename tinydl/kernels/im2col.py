"""im2col and col2im: the layout change that turns a convolution into one matrix product.

Images are stored channels-last and zero-padded here, ``x[b, h, w, c]`` of shape (n, Hp, Wp, C). A convolution
with a kh x kw kernel, stride (sh, sw), dilation (dh, dw) and ``groups`` groups of Cg = C / groups channels reads,
for output position (oh, ow), the *patch*

    cols[b, oh, ow, grp, i, j, c] = x[b, oh*sh + i*dh, ow*sw + j*dw, grp*Cg + c]

for i < kh, j < kw, c < Cg. Laid out this way, each patch (per group) is one row of kh*kw*Cg numbers, and the
convolution is the product of the rows with the weight matrix. The patches overlap, so ``cols`` holds every input
value up to kh*kw times; it is built by one copy from a *strided view* of ``x`` (no Python loop, no index
arrays). Channels-last makes that copy fast: with dilation 1 and one group, each run of kw*C numbers of a patch is
contiguous in ``x``.

col2im is the adjoint (the transpose) of im2col: every entry of ``cols`` is added back onto the input position it
was copied from. Positions shared by several patches receive the sum, which is exactly the chain rule for a value
used several times. It runs as a loop over the kh*kw kernel taps, each adding one strided slice, so there are no
scattered writes and no ``add.at``.
"""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from .geometry import Conv2dGeometry

__all__ = ["pad_channels_last", "im2col", "col2im"]


def pad_channels_last(x: Any, geometry: Conv2dGeometry, out: Any) -> Any:
    """Copy ``x`` (n, C, H, W) into the interior of ``out`` (n, Hp, Wp, C), channels last. The border of ``out``
    (the padding) is left as it is: the caller zeroes it once and reuses ``out`` for every chunk."""
    (top, _), (left, _) = geometry.padding
    height, width = x.shape[2:]
    out[:, top:top + height, left:left + width, :] = x.transpose(0, 2, 3, 1)
    return out


def im2col(padded: Any, geometry: Conv2dGeometry, out: Any) -> Any:
    """Write the patches of ``padded`` (n, Hp, Wp, C) into ``out`` of shape (n, OH, OW, groups, kh, kw, Cg).

    ``out[b, oh, ow, g, i, j, c] = padded[b, oh*sh + i*dh, ow*sw + j*dw, g*Cg + c]``: one strided view, one copy.
    """
    xp = get_array_module(padded)
    (stride_h, stride_w), (dilation_h, dilation_w) = geometry.stride, geometry.dilation
    channels_per_group = out.shape[-1]
    batch, row, column, channel = padded.strides
    patches = xp.lib.stride_tricks.as_strided(
        padded, shape=out.shape,
        strides=(batch, row * stride_h, column * stride_w, channel * channels_per_group,
                 row * dilation_h, column * dilation_w, channel))
    xp.copyto(out, patches)
    return out


def col2im(cols: Any, geometry: Conv2dGeometry, out: Any) -> Any:
    """The adjoint of :func:`im2col`: ``out`` (n, Hp, Wp, C) is overwritten with the sum, over all patches, of each
    patch entry placed where im2col took it from,

        out[b, oh*sh + i*dh, ow*sw + j*dw, g*Cg + c] += cols[b, oh, ow, g, i, j, c],

    computed as one strided slice addition per kernel tap (i, j).
    """
    n, out_h, out_w, groups, kernel_h, kernel_w, channels_per_group = cols.shape
    (stride_h, stride_w), (dilation_h, dilation_w) = geometry.stride, geometry.dilation
    out.fill(0)
    grouped = out.reshape(out.shape[:3] + (groups, channels_per_group))
    for i in range(kernel_h):
        top = i * dilation_h
        for j in range(kernel_w):
            left = j * dilation_w
            target = grouped[:, top:top + stride_h * (out_h - 1) + 1:stride_h,
                             left:left + stride_w * (out_w - 1) + 1:stride_w]
            target += cols[:, :, :, :, i, j, :]
    return out
