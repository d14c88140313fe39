"""2-D convolution (PyTorch's cross-correlation) and its two gradients, as matrix products over im2col patches.

Shapes: input x (N, C, H, W), weight w (O, Cg, kh, kw) with Cg = C / groups, output y (N, O, OH, OW); with
K = kh*kw*Cg numbers per patch, L = OH*OW output positions and Og = O / groups filters per group:

    forward          y[b, g, :, :]  = W_g (Og x K)  @  cols[b, :, g, :]^T (K x L)
    input gradient   cols[b, :, g, :] = gy[b, g]^T (L x Og)  @  W_g (Og x K),    then gx = col2im(cols)
    weight gradient  W_g gradient  = sum_b  gy[b, g] (Og x L)  @  cols[b, :, g, :] (L x K)

where ``cols[b, l, g, k]`` (from :mod:`.im2col`) is patch l of image b, and W_g is the weight of group g reshaped
to Og rows of K numbers in the same (i, j, c) order as a patch. Each product is one batched ``matmul`` over the
images of a chunk (:mod:`.chunking`), written straight into the NCHW result, so no output is ever transposed.
An input gradient is never computed unless asked for: the three functions are independent.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..backend import get_array_module
from .chunking import batch_chunks
from .geometry import Conv2dGeometry
from .im2col import col2im, im2col, pad_channels_last, spare_rows

__all__ = ["conv2d_forward", "conv2d_input_grad", "conv2d_weight_grad"]


class _Layout:
    """The sizes of one convolution, and the scratch buffers of one chunk of images."""

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
        image_bytes = (self.positions * self.groups * self.patch + self.out_channels * self.positions) * dtype.itemsize
        self.chunks = list(batch_chunks(self.batch, image_bytes, xp))
        self.chunk = self.chunks[0].stop if self.chunks else 0
        padded_h, padded_w = geometry.padded_size(self.height, self.width)
        self.padded = xp.zeros((self.chunk, padded_h + spare_rows(geometry), padded_w, self.channels), dtype)
        self.cols = xp.empty((self.chunk, self.out_h, self.out_w, self.groups, self.kernel_h, self.kernel_w,
                              self.channels_per_group), dtype)

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
        """The patches of images ``part`` of ``x`` as (n, L, groups, K), in the chunk's scratch buffer."""
        n = part.stop - part.start
        padded = pad_channels_last(x[part], self.geometry, self.padded[:n])
        return im2col(padded, self.geometry, self.cols[:n]).reshape(n, self.positions, self.groups, self.patch)

    def by_group(self, y: Any, part: slice) -> Any:
        """Images ``part`` of an (N, O, OH, OW) array viewed as (n, groups, Og, L)."""
        return y[part].reshape(part.stop - part.start, self.groups, self.out_per_group, self.positions)


def conv2d_forward(x: Any, weight: Any, bias: Any, geometry: Conv2dGeometry) -> Any:
    """y[b, o] = bias[o] + sum over (c, i, j) of w[o, c, i, j] x_padded[b, g*Cg + c, oh*sh + i*dh, ow*sw + j*dw]
    for o in group g: one matrix product W_g @ cols^T per chunk of images."""
    xp = get_array_module(x)
    layout = _Layout(xp, x.shape, weight.shape, geometry, x.dtype)
    rows = layout.weight_rows(weight)
    y = xp.empty(layout.output_shape, x.dtype)
    for part in layout.chunks:
        cols = layout.patches(x, part)
        xp.matmul(rows, cols.transpose(0, 2, 3, 1), out=layout.by_group(y, part))
        if bias is not None:
            y[part] += bias.reshape(-1, 1, 1)
    return y


def conv2d_input_grad(grad_output: Any, weight: Any, input_shape: Sequence[int], geometry: Conv2dGeometry) -> Any:
    """gx = col2im(cols) with cols[b, l, g, :] = sum over o of gy[b, g, o, l] W_g[o, :]: every patch receives
    the weight rows scaled by the output gradient at its position, and col2im adds the patches back."""
    xp = get_array_module(grad_output)
    layout = _Layout(xp, input_shape, weight.shape, geometry, grad_output.dtype)
    rows = layout.weight_rows(weight)
    (top, _), (left, _) = geometry.padding
    grad_input = xp.empty(tuple(input_shape), grad_output.dtype)
    # the product writes (n, groups, L, K) contiguously; col2im reads it as a view in im2col's patch order
    by_group = layout.cols.reshape(layout.chunk, layout.groups, layout.out_h, layout.out_w, layout.kernel_h,
                                   layout.kernel_w, layout.channels_per_group)
    for part in layout.chunks:
        n = part.stop - part.start
        xp.matmul(layout.by_group(grad_output, part).transpose(0, 1, 3, 2), rows,
                  out=by_group[:n].reshape(n, layout.groups, layout.positions, layout.patch))
        padded = col2im(by_group[:n].transpose(0, 2, 3, 1, 4, 5, 6), geometry, layout.padded[:n])
        grad_input[part] = padded[:, top:top + layout.height, left:left + layout.width, :].transpose(0, 3, 1, 2)
    return grad_input


def conv2d_weight_grad(x: Any, grad_output: Any, weight_shape: Sequence[int], geometry: Conv2dGeometry) -> Any:
    """gW_g = sum over images b of gy[b, g] (Og x L) @ cols[b, :, g, :] (L x K): the correlation of the output
    gradient with the input patches, summed over the batch."""
    xp = get_array_module(x)
    layout = _Layout(xp, x.shape, weight_shape, geometry, x.dtype)
    total = xp.zeros((layout.groups, layout.out_per_group, layout.patch), x.dtype)
    per_image = xp.empty((layout.chunk,) + total.shape, x.dtype)
    for part in layout.chunks:
        n = part.stop - part.start
        cols = layout.patches(x, part)
        xp.matmul(layout.by_group(grad_output, part), cols.transpose(0, 2, 1, 3), out=per_image[:n])
        total += per_image[:n].sum(axis=0)
    return layout.weight_from_rows(total)
