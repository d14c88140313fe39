"""2-D convolution (PyTorch's cross-correlation) and its two gradients, as matrix products over im2col patches.

Shapes: input x (N, C, H, W), weight w (O, Cg, kh, kw) with Cg = C / groups, output y (N, O, OH, OW); with
K = kh*kw*Cg numbers per patch, L = OH*OW output positions and Og = O / groups filters per group. The kernels work
on a chunk of n images at a time (:mod:`.chunking`); its P = n*L patches are the rows of ``cols`` (:mod:`.im2col`),
and per group g:

    forward          Y_g (Og x P)  =  W_g (Og x K)  @  cols_g^T (K x P)
    input gradient   gcols_g (P x K)  =  GY_g^T (P x Og)  @  W_g (Og x K),        then gx = col2im(gcols)
    weight gradient  gW_g (Og x K)  +=  GY_g (Og x P)  @  cols_g (P x K)

W_g is the weight of group g as Og rows of K numbers, in the (i, j, c) order of a patch. Y and GY are
*channel-major*: row o holds filter o's values at every position of every image of the chunk. NCHW arrays hold
each image's (O x L) block separately, so converting between the two layouts copies whole rows of L numbers (no
element-wise transposition), and each chunk then needs a single matrix product: few, large BLAS calls keep both
cores busy, also on a loaded machine where many small calls stall on their threads. An input gradient is never
computed unless asked for: the three functions are independent.

Two algorithms compute these: im2col (above), the general path, and Winograd F(4x4, 3x3) or F(2x2, 3x3)
(:mod:`.winograd`) for 3x3, stride-1, dilation-1, one-group convolutions. :func:`set_conv_algorithm` or the
environment variable ``TINYDL_CONV_ALGORITHM`` chooses: ``"auto"`` (the default: Winograd F(4x4, 3x3) on NumPy
where it was measured faster, :func:`winograd_pays`, im2col everywhere else), ``"im2col"``, ``"winograd"``
(F(4x4, 3x3) wherever it applies) or ``"winograd2x2"``. Forcing Winograd on a convolution it cannot compute raises
an error naming its geometry. With few input channels (an RGB image) im2col builds its patches in the *planar*
layout instead (:func:`planar_forward`, :func:`planar_weight_grad`): per image, y (O x L) = W (O x K) @ cols (K x L)
with cols in NCHW order, which copies longer runs and writes y without a scratch matrix.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable, Sequence

from ..backend import get_array_module
from .chunking import batch_chunks
from .geometry import Conv2dGeometry
from .im2col import add_patches, image_patches, planar_patches, spare_rows
from .scratch import scratch
from .threads import blas_threads
from .winograd import (TILES, WinogradTile, unsupported_reason, winograd_forward, winograd_input_grad,
                       winograd_weight_grad)

__all__ = ["conv2d_forward", "conv2d_input_grad", "conv2d_weight_grad", "set_conv_algorithm", "get_conv_algorithm",
           "ALGORITHMS", "winograd_pays", "blas_threads", "im2col_forward", "im2col_input_grad", "im2col_weight_grad",
           "planar_forward", "planar_weight_grad", "PLANAR_FORWARD_CHANNELS", "PLANAR_WEIGHT_GRAD_CHANNELS"]

ALGORITHMS = ("auto", "im2col", "winograd", "winograd2x2")
_FORCED_TILES = {"winograd": TILES["winograd4x4"], "winograd2x2": TILES["winograd2x2"]}


def _checked_algorithm(name: str, source: str) -> str:
    if name not in ALGORITHMS:
        raise ValueError(f"conv2d: unknown convolution algorithm {name!r} (from {source}); choose one of "
                         f"{', '.join(ALGORITHMS)}")
    return name


_algorithm = _checked_algorithm(os.environ.get("TINYDL_CONV_ALGORITHM", "auto"), "TINYDL_CONV_ALGORITHM")


def set_conv_algorithm(name: str) -> str:
    """Use ``name`` (one of :data:`ALGORITHMS`) for every following convolution; returns the previous choice."""
    global _algorithm
    previous, _algorithm = _algorithm, _checked_algorithm(name, "set_conv_algorithm")
    return previous


def get_conv_algorithm() -> str:
    """The current choice: ``"auto"`` (default), ``"im2col"``, ``"winograd"`` or ``"winograd2x2"``."""
    return _algorithm


def winograd_pays(xp: Any, channels: int, out_channels: int, out_h: int, out_w: int, threads: int = 1) -> bool:
    """Whether F(4x4, 3x3) beats im2col, as measured on the 2-core development machine
    (``benchmarks/bench_winograd.py``). With one BLAS thread (CPU time per call, batch 64) it takes 0.5-0.8x
    im2col's time from 12x12 outputs and 8 channels on (0.5x for 64->128 at 16x16), but up to 3x *more* on 4x4 and
    2x2 outputs, where most of a 6x6 tile is padding, and about the same with 3 input channels. With two BLAS
    threads on the shared machine (load 9 on 2 cores) it was 2.5-4x *slower* than im2col: its a*a GEMMs per chunk
    each hand work to the BLAS threads, and on a busy machine every hand-off waits to be scheduled (im2col makes
    one GEMM per chunk). So it is chosen only with one BLAS thread. On a GPU (untuned) im2col stays.

    Inside the whole CNN training step it pays as well: one thread, CPU time, alternating in one process on the
    quiet machine (load 2), 142 ms per step against im2col's 177 ms (conv2 forward, input and weight gradient by
    Winograd, conv1 by im2col). An earlier measurement under load 7-11 had "auto" at 1.6 s against 0.64 s: with
    nine jobs on two cores (most likely the transforms' extra passes over memory competing for the shared cache;
    not reproducible once the machine was quiet).
    So "auto" is the default, and it leaves every other convolution to im2col."""
    return (xp.__name__ == "numpy" and threads == 1 and min(out_h, out_w) >= 12
            and min(channels, out_channels) >= 8)


def _winograd_tile(xp: Any, input_shape: Sequence[int], weight_shape: Sequence[int],
                   geometry: Conv2dGeometry) -> WinogradTile | None:
    """The Winograd algorithm to use for this convolution, or None for im2col."""
    if _algorithm == "im2col":
        return None
    reason = unsupported_reason(weight_shape, geometry)
    if _algorithm != "auto":
        if reason is not None:
            raise ValueError(f"conv2d: the convolution algorithm is forced to {_algorithm!r}, but Winograd "
                             f"F(m x m, 3x3) cannot compute this convolution (input shape {tuple(input_shape)}, "
                             f"weight shape {tuple(weight_shape)}, stride {geometry.stride}, padding "
                             f"{geometry.padding}, dilation {geometry.dilation}, groups={geometry.groups}): "
                             f"{reason}")
        return _FORCED_TILES[_algorithm]
    if reason is not None:
        return None
    out_h, out_w = geometry.output_size(input_shape[2], input_shape[3], (3, 3))
    pays = winograd_pays(xp, input_shape[1], weight_shape[0], out_h, out_w, blas_threads())
    return TILES["winograd4x4"] if pays else None



class _Layout:
    """The sizes of one convolution, the chunks of its batch, and the scratch buffers of one chunk."""

    def __init__(self, xp: Any, input_shape: Sequence[int], weight_shape: Sequence[int],
                 geometry: Conv2dGeometry, dtype: Any):
        self.xp, self.geometry = xp, geometry
        self.batch, self.channels, self.height, self.width = input_shape
        self.out_channels, self.channels_per_group, self.kernel_h, self.kernel_w = weight_shape
        self.groups = geometry.groups
        self.out_per_group = self.out_channels // self.groups
        self.out_h, self.out_w = geometry.output_size(self.height, self.width, (self.kernel_h, self.kernel_w))
        self.positions = self.out_h * self.out_w                                      # L
        self.patch = self.kernel_h * self.kernel_w * self.channels_per_group          # K
        self.output_shape = (self.batch, self.out_channels, self.out_h, self.out_w)
        patch_numbers = self.positions * self.groups * self.patch
        channel_numbers = self.out_channels * self.positions
        self.chunks = list(batch_chunks(self.batch, (patch_numbers + channel_numbers) * dtype.itemsize, xp))
        chunk = self.chunks[0].stop if self.chunks else 0
        padded_h, padded_w = geometry.padded_size(self.height, self.width)
        self._padded_shape = (chunk, padded_h + spare_rows(geometry), padded_w, self.channels)
        self.patch_buffer = scratch(xp, "conv.patches", (chunk * patch_numbers,), dtype)
        self.channel_buffer = scratch(xp, "conv.channel_major", (chunk * channel_numbers,), dtype)

    @functools.cached_property
    def padded(self) -> Any:
        """The zero-bordered channels-last scratch images of the plain path (allocated when first needed: the
        fused CUDA kernels read and write NCHW directly)."""
        return scratch(self.xp, "conv.padded_images", self._padded_shape, self.patch_buffer.dtype, zeroed=True)

    def padded_images(self, n: int) -> Callable[[], Any]:
        """The first ``n`` scratch images, as the callable that :func:`image_patches` and :func:`add_patches` ask
        for them through."""
        return lambda: self.padded[:n]

    def weight_rows(self, weight: Any) -> Any:
        """The weight (O, Cg, kh, kw) as (groups, Og, K), each row in the (i, j, c) order of a patch."""
        grouped = weight.reshape(self.groups, self.out_per_group, self.channels_per_group, self.kernel_h,
                                 self.kernel_w)
        return self.xp.ascontiguousarray(grouped.transpose(0, 1, 3, 4, 2)).reshape(
            self.groups, self.out_per_group, self.patch)

    def weight_from_rows(self, rows: Any) -> Any:
        """The inverse of :meth:`weight_rows`: (groups, Og, K) back to (O, Cg, kh, kw)."""
        grouped = rows.reshape(self.groups, self.out_per_group, self.kernel_h, self.kernel_w, self.channels_per_group)
        return self.xp.ascontiguousarray(grouped.transpose(0, 1, 4, 2, 3)).reshape(
            self.out_channels, self.channels_per_group, self.kernel_h, self.kernel_w)

    def patches(self, x: Any, part: slice) -> Any:
        """im2col of images ``part`` of ``x``: (P, groups, K), one row of K numbers per patch and group."""
        n = part.stop - part.start
        cols = self.patch_buffer[:n * self.positions * self.groups * self.patch].reshape(
            n, self.out_h, self.out_w, self.groups, self.kernel_h, self.kernel_w, self.channels_per_group)
        return image_patches(x[part], self.geometry, self.padded_images(n), cols).reshape(
            n * self.positions, self.groups, self.patch)

    def channel_major(self, part: slice) -> Any:
        """The chunk's channel-major scratch matrix, (groups, Og, P)."""
        n = part.stop - part.start
        return self.channel_buffer[:self.out_channels * n * self.positions].reshape(
            self.groups, self.out_per_group, n * self.positions)

    def as_images(self, channel_major: Any, part: slice) -> Any:
        """A (groups, Og, P) matrix viewed as the chunk's (n, groups, Og, L) images (a strided view)."""
        n = part.stop - part.start
        return channel_major.reshape(self.groups, self.out_per_group, n, self.positions).transpose(2, 0, 1, 3)

    def by_group(self, y: Any, part: slice) -> Any:
        """Images ``part`` of an (N, O, OH, OW) array viewed as (n, groups, Og, L)."""
        return y[part].reshape(part.stop - part.start, self.groups, self.out_per_group, self.positions)


def im2col_forward(x: Any, weight: Any, bias: Any, geometry: Conv2dGeometry) -> Any:
    """y[b, o] = bias[o] + sum over (c, i, j) of w[o, c, i, j] x_padded[b, g*Cg + c, oh*sh + i*dh, ow*sw + j*dw]
    for o in group g: Y_g = W_g @ cols_g^T per chunk, then Y's rows copied (plus the bias) into the images."""
    xp = get_array_module(x)
    layout = _Layout(xp, x.shape, weight.shape, geometry, x.dtype)
    rows = layout.weight_rows(weight)
    y = xp.empty(layout.output_shape, x.dtype)
    shift = None if bias is None else bias.reshape(layout.groups, layout.out_per_group, 1)
    for part in layout.chunks:
        cols = layout.patches(x, part)
        product = layout.channel_major(part)
        xp.matmul(rows, cols.transpose(1, 2, 0), out=product)
        if shift is not None:
            product += shift
        xp.copyto(layout.by_group(y, part), layout.as_images(product, part))
    return y


def im2col_input_grad(grad_output: Any, weight: Any, input_shape: Sequence[int], geometry: Conv2dGeometry) -> Any:
    """gx = col2im(gcols) with gcols_g = GY_g^T @ W_g: every patch receives the weight rows scaled by the output
    gradient at its position, and col2im adds the patches back onto the input."""
    xp = get_array_module(grad_output)
    layout = _Layout(xp, input_shape, weight.shape, geometry, grad_output.dtype)
    rows = layout.weight_rows(weight)
    grad_input = xp.empty(tuple(input_shape), grad_output.dtype)
    for part in layout.chunks:
        n = part.stop - part.start
        grad_rows = layout.channel_major(part)
        xp.copyto(layout.as_images(grad_rows, part), layout.by_group(grad_output, part))
        # the product (groups, P, K) is written contiguously; col2im reads it as a view in im2col's patch order
        grad_cols = layout.patch_buffer[:layout.groups * n * layout.positions * layout.patch].reshape(
            layout.groups, n * layout.positions, layout.patch)
        xp.matmul(grad_rows.transpose(0, 2, 1), rows, out=grad_cols)
        patches = grad_cols.reshape(layout.groups, n, layout.out_h, layout.out_w, layout.kernel_h, layout.kernel_w,
                                    layout.channels_per_group).transpose(1, 2, 3, 0, 4, 5, 6)
        add_patches(patches, geometry, layout.padded_images(n), grad_input[part])
    return grad_input


def im2col_weight_grad(x: Any, grad_output: Any, weight_shape: Sequence[int], geometry: Conv2dGeometry) -> Any:
    """gW_g = sum over chunks of GY_g @ cols_g: the correlation of the output gradient with the input patches,
    summed over the batch."""
    xp = get_array_module(x)
    layout = _Layout(xp, x.shape, weight_shape, geometry, x.dtype)
    total = xp.zeros((layout.groups, layout.out_per_group, layout.patch), x.dtype)
    product = xp.empty_like(total)
    for part in layout.chunks:
        cols = layout.patches(x, part)
        grad_rows = layout.channel_major(part)
        xp.copyto(layout.as_images(grad_rows, part), layout.by_group(grad_output, part))
        xp.matmul(grad_rows, cols.transpose(1, 0, 2), out=product)
        total += product
    return layout.weight_from_rows(total)


# The planar layout (im2col per image in NCHW order, :func:`.im2col.planar_patches`) against the channels-last one,
# measured with one thread, batch 64, 3x3 kernels (CPU time): forward 5.9 against 7.6 ms for 3 -> 64 channels at
# 32x32 (the CNN's first layer; 109 against 133 ms at batch 1000), 6.9 against 8.9 ms for 8 channels, 11.8 against
# 15.6 for 16, the same from 32 channels on; the weight gradient 6.1 against 6.8 ms for 3 channels but slower
# from 8 on (7.4 against 6.5). With two BLAS threads on the quiet machine: forward 5.4 against 6.3 ms, weight
# gradient 4.8 against 8.6 ms. Hence the limits below, with one group, on NumPy (the GPU keeps its fused kernels).
# The planar layout makes one small product per image: while another process holds a core (other jobs, or
# PyTorch's OpenMP threads spinning in an alternating benchmark) each of them waits for the BLAS threads to be
# scheduled, and the first layer's forward pass was once measured at 1035 ms against PyTorch's 31 that way.
PLANAR_FORWARD_CHANNELS = 16
PLANAR_WEIGHT_GRAD_CHANNELS = 4


def _planar_pays(xp: Any, input_shape: Sequence[int], geometry: Conv2dGeometry, limit: int) -> bool:
    return xp.__name__ == "numpy" and geometry.groups == 1 and input_shape[1] <= limit


class _PlanarLayout:
    """A one-group convolution in the planar layout: per chunk of n images, the patches as (n, K, L) with
    K = C*kh*kw in the weight's own (c, i, j) order, and the zero-bordered NCHW scratch images they come from.
    With ``ones_row`` each image's patch matrix has one more row, all ones, after its K rows (n, K + 1, L): the
    row that multiplies the bias when it is appended to the weight as one more column."""

    def __init__(self, xp: Any, input_shape: Sequence[int], weight_shape: Sequence[int],
                 geometry: Conv2dGeometry, dtype: Any, ones_row: bool = False):
        self.xp, self.geometry = xp, geometry
        batch, channels, self.height, self.width = input_shape
        self.out_channels, _, kernel_h, kernel_w = weight_shape
        self.out_h, self.out_w = geometry.output_size(self.height, self.width, (kernel_h, kernel_w))
        self.patch, self.positions = channels * kernel_h * kernel_w, self.out_h * self.out_w       # K, L
        padded_h, padded_w = geometry.padded_size(self.height, self.width)
        rows = self.patch + ones_row
        per_image = (rows * self.positions + channels * padded_h * padded_w) * dtype.itemsize
        self.chunks = list(batch_chunks(batch, per_image, xp))
        chunk = self.chunks[0].stop if self.chunks else 0
        self.padded = scratch(xp, "conv.padded_images", (chunk, channels, padded_h, padded_w), dtype, zeroed=True)
        self.cols = scratch(xp, "conv.patches", (chunk, rows, self.positions), dtype)
        self.cols[:, self.patch:] = 1
        self._patch_shape = (channels, kernel_h, kernel_w, self.out_h, self.out_w)

    def patches(self, x: Any, part: slice) -> Any:
        """The patches of images ``part`` of ``x``, (n, K, L), or (n, K + 1, L) with the ones row."""
        n = part.stop - part.start
        (top, _), (left, _) = self.geometry.padding
        padded = self.padded[:n]
        padded[:, :, top:top + self.height, left:left + self.width] = x[part]
        planar_patches(padded, self.geometry, self.cols[:n, :self.patch].reshape((n,) + self._patch_shape))
        return self.cols[:n]


def planar_forward(x: Any, weight: Any, bias: Any, geometry: Conv2dGeometry) -> Any:
    """y[b] (O x L) = W (O x K) @ cols[b] (K x L) + bias, one product per image written straight into y's
    NCHW memory (no channel-major scratch matrix to copy back). The bias rides in the product,
    y[b] = [W | bias] (O x K+1) @ [cols[b]; ones] (K+1 x L), which spares a pass over y (1.9 of 7.4 ms for the
    CNN's first layer at batch 64)."""
    xp = get_array_module(x)
    layout = _PlanarLayout(xp, x.shape, weight.shape, geometry, x.dtype, ones_row=bias is not None)
    rows = weight.reshape(layout.out_channels, layout.patch)
    if bias is not None:
        rows = xp.concatenate([rows, bias.reshape(layout.out_channels, 1)], axis=1)
    y = xp.empty((x.shape[0], layout.out_channels, layout.out_h, layout.out_w), x.dtype)
    for part in layout.chunks:
        images = y[part].reshape(-1, layout.out_channels, layout.positions)
        xp.matmul(rows, layout.patches(x, part), out=images)
    return y


def planar_weight_grad(x: Any, grad_output: Any, weight_shape: Sequence[int], geometry: Conv2dGeometry) -> Any:
    """gW (O x K) = sum over images b of GY[b] (O x L) @ cols[b]^T (L x K)."""
    xp = get_array_module(x)
    layout = _PlanarLayout(xp, x.shape, weight_shape, geometry, x.dtype)
    total = xp.zeros((layout.out_channels, layout.patch), x.dtype)
    for part in layout.chunks:
        grad_images = grad_output[part].reshape(-1, layout.out_channels, layout.positions)
        total += xp.matmul(grad_images, layout.patches(x, part).transpose(0, 2, 1)).sum(axis=0)
    return total.reshape(tuple(weight_shape))


def conv2d_forward(x: Any, weight: Any, bias: Any, geometry: Conv2dGeometry) -> Any:
    """y = conv2d(x, weight, bias), by Winograd or im2col (see :func:`set_conv_algorithm`); im2col in the planar
    layout for few input channels."""
    xp = get_array_module(x)
    tile = _winograd_tile(xp, x.shape, weight.shape, geometry)
    if tile is not None:
        return winograd_forward(x, weight, bias, geometry, tile)
    if _planar_pays(xp, x.shape, geometry, PLANAR_FORWARD_CHANNELS):
        return planar_forward(x, weight, bias, geometry)
    return im2col_forward(x, weight, bias, geometry)


def conv2d_input_grad(grad_output: Any, weight: Any, input_shape: Sequence[int], geometry: Conv2dGeometry) -> Any:
    """gx for an output gradient gy, by Winograd or im2col (see :func:`set_conv_algorithm`)."""
    tile = _winograd_tile(get_array_module(grad_output), input_shape, weight.shape, geometry)
    if tile is None:
        return im2col_input_grad(grad_output, weight, input_shape, geometry)
    return winograd_input_grad(grad_output, weight, input_shape, geometry, tile)


def conv2d_weight_grad(x: Any, grad_output: Any, weight_shape: Sequence[int], geometry: Conv2dGeometry) -> Any:
    """gW for an output gradient gy, by Winograd or im2col (see :func:`set_conv_algorithm`); im2col in the planar
    layout for few input channels."""
    xp = get_array_module(x)
    tile = _winograd_tile(xp, x.shape, weight_shape, geometry)
    if tile is not None:
        return winograd_weight_grad(x, grad_output, weight_shape, geometry, tile)
    if _planar_pays(xp, x.shape, geometry, PLANAR_WEIGHT_GRAD_CHANNELS):
        return planar_weight_grad(x, grad_output, weight_shape, geometry)
    return im2col_weight_grad(x, grad_output, weight_shape, geometry)
