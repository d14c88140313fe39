"""im2col and col2im: the layout change that turns a convolution into one matrix product.

Images are stored channels-last and zero-padded here, ``x[b, h, w, c]`` of shape (n, Hp, Wp, C) (plus a few spare
rows at the bottom that col2im needs, see there). A convolution
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

:func:`image_patches` and :func:`add_patches` are what convolution calls: NCHW images in and out, through the
padded channels-last buffer on the plain path, and straight through one CUDA kernel each on a GPU with fusion on
(:mod:`.cuda.im2col`).
"""
from __future__ import annotations

from typing import Any, Callable

from ..backend import get_array_module
from .cuda import im2col as fused
from .cuda.build import can_fuse, contiguous
from .geometry import Conv2dGeometry
from .scratch import scratch

__all__ = ["pad_channels_last", "im2col", "col2im", "spare_rows", "image_patches", "add_patches", "planar_patches"]


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


def spare_rows(geometry: Conv2dGeometry) -> int:
    """How many zero rows col2im needs below each padded image (see :func:`col2im`): the vertical stride."""
    return geometry.stride[0]


def col2im(cols: Any, geometry: Conv2dGeometry, out: Any) -> Any:
    """The adjoint of :func:`im2col`: ``out`` (n, Hp + spare_rows, Wp, C), C-contiguous, is overwritten with the
    sum, over all patches, of each patch entry placed where im2col took it from,

        out[b, oh*sh + i*dh, ow*sw + j*dw, g*Cg + c] += cols[b, oh, ow, g, i, j, c],

    computed as one addition per kernel tap (i, j). Each tap's entries are first spread onto rows as wide as the
    padded image (zeros between and after them), so that the addition covers whole rows: for stride 1 the rows of
    one image are consecutive in memory and the addition is one contiguous run per image, which NumPy adds several
    times faster than a view with short rows. A row added from column j*dw on overhangs into the next row with
    zeros, and the spare rows at the bottom of each image take the overhang of the last rows.
    """
    xp = get_array_module(cols)
    if not out.flags.c_contiguous:
        raise ValueError(f"col2im: out must be C-contiguous (its rows are addressed as one flat run), got strides "
                         f"{out.strides}")
    n, out_h, out_w, groups, kernel_h, kernel_w, channels_per_group = cols.shape
    (stride_h, stride_w), (dilation_h, dilation_w) = geometry.stride, geometry.dilation
    padded_w, channels = out.shape[2], out.shape[3]
    row = padded_w * channels
    spread = scratch(xp, "col2im.spread", (n, out_h, padded_w, groups, channels_per_group), cols.dtype, zeroed=True)
    spread_taps = spread[:, :, :stride_w * (out_w - 1) + 1:stride_w]
    rows = spread.reshape(n, out_h, row)
    images = out.reshape(n, -1)
    out.fill(0)
    for i in range(kernel_h):
        for j in range(kernel_w):
            xp.copyto(spread_taps, cols[:, :, :, :, i, j, :])
            start = (i * dilation_h * padded_w + j * dilation_w) * channels
            target = images[:, start:start + out_h * stride_h * row].reshape(n, out_h, stride_h * row)[:, :, :row]
            target += rows
    return out


def planar_patches(padded: Any, geometry: Conv2dGeometry, out: Any) -> Any:
    """im2col in the *planar* layout, for one group: write into ``out`` (n, C, kh, kw, OH, OW) the patches of the
    zero-padded NCHW images ``padded`` (n, C, Hp, Wp),

        out[b, c, i, j, oh, ow] = padded[b, c, oh*sh + i*dh, ow*sw + j*dw],

    so that each image's patches form one (K x L) matrix, K = C*kh*kw rows in the (c, i, j) order of the weight's
    own layout. Each copied run is a row of OW numbers, where the channels-last layout above copies runs of kw*C:
    the better layout when C is small (an RGB image: runs of 9 numbers there, 32 here)."""
    xp = get_array_module(padded)
    (stride_h, stride_w), (dilation_h, dilation_w) = geometry.stride, geometry.dilation
    batch, channel, row, column = padded.strides
    patches = xp.lib.stride_tricks.as_strided(
        padded, shape=out.shape,
        strides=(batch, channel, row * dilation_h, column * dilation_w, row * stride_h, column * stride_w))
    xp.copyto(out, patches)
    return out


def image_patches(x: Any, geometry: Conv2dGeometry, padded: Callable[[], Any], out: Any) -> Any:
    """The patches of the NCHW images ``x`` written into ``out`` (n, OH, OW, groups, kh, kw, Cg). The plain path
    first copies ``x`` into the interior of ``padded()``, scratch images (n, Hp + spare, Wp, C) whose border must
    be zero; the fused kernel never asks for them."""
    if can_fuse(x, out) and contiguous(out):
        return fused.im2col_nchw(x, geometry, out)
    return im2col(pad_channels_last(x, geometry, padded()), geometry, out)


def add_patches(cols: Any, geometry: Conv2dGeometry, padded: Callable[[], Any], out: Any) -> Any:
    """col2im of ``cols`` (n, OH, OW, groups, kh, kw, Cg), cropped to the images and written into the NCHW
    ``out`` (n, C, H, W); the plain path sums into the scratch images ``padded()`` (as :func:`col2im`) first."""
    if can_fuse(cols, out) and contiguous(out):
        return fused.col2im_nchw(cols, geometry, out)
    padded = col2im(cols, geometry, padded())
    (top, _), (left, _) = geometry.padding
    height, width = out.shape[2:]
    out[...] = padded[:, top:top + height, left:left + width, :].transpose(0, 3, 1, 2)
    return out
