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
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

from ..backend import get_array_module
from .chunking import batch_chunks
from .geometry import Conv2dGeometry
from .im2col import add_patches, image_patches, spare_rows

__all__ = ["conv2d_forward", "conv2d_input_grad", "conv2d_weight_grad"]


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
        self.patch_buffer = xp.empty(chunk * patch_numbers, dtype)
        self.channel_buffer = xp.empty(chunk * channel_numbers, dtype)

    @functools.cached_property
    def padded(self) -> Any:
        """The zero-bordered channels-last scratch images of the plain path (allocated when first needed: the
        fused CUDA kernels read and write NCHW directly)."""
        return self.xp.zeros(self._padded_shape, self.patch_buffer.dtype)

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


def conv2d_forward(x: Any, weight: Any, bias: Any, geometry: Conv2dGeometry) -> Any:
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


def conv2d_input_grad(grad_output: Any, weight: Any, input_shape: Sequence[int], geometry: Conv2dGeometry) -> Any:
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


def conv2d_weight_grad(x: Any, grad_output: Any, weight_shape: Sequence[int], geometry: Conv2dGeometry) -> Any:
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
