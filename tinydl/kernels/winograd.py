"""Winograd convolution F(m x m, 3 x 3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).

A 3x3, stride-1, dilation-1, one-group convolution computes every m x m block of outputs from an a x a tile of
the padded input (a = m + 2; neighbouring tiles overlap by 2). Winograd's minimal filtering algorithm computes that
block with a*a multiplications per (filter, channel) pair instead of 9*m*m:

    Y = A^T [ (G g G^T)  ⊙  (B^T d B) ] A                       d: a x a input tile, g: 3x3 filter, Y: m x m

(⊙: element-wise product). Summed over the input channels c, and with U = G g G^T (a x a per filter and channel),
V = B^T d B (a x a per channel and tile):

    M[xi, nu] (O x P)  =  U[xi, nu] (O x C)  @  V[xi, nu] (C x P)        one GEMM for each of the a*a positions
    Y (m x m per filter and tile)  =  A^T M A

P is the number of tiles of a chunk of images. The products thus cost a*a / (9 m*m) of im2col's: 0.44 for
F(2x2, 3x3) and 0.25 for F(4x4, 3x3); the transforms add passes over memory whose cost is ~linear in the data.

F(2x2, 3x3) (a = 4): exact in binary floating point up to rounding of sums (its entries are 0, +-1, +-1/2):

    B^T = [[1,  0, -1,  0],      G = [[1,    0,   0  ],      A^T = [[1, 1,  1,  0],
           [0,  1,  1,  0],           [1/2,  1/2, 1/2],             [0, 1, -1, -1]]
           [0, -1,  1,  0],           [1/2, -1/2, 1/2],
           [0,  1,  0, -1]]           [0,    0,   1  ]]

F(4x4, 3x3) (a = 6), interpolation points 0, +-1, +-2 and infinity:

    B^T = [[4,  0, -5,  0, 1, 0],      G = [[ 1/4,     0,     0  ],      A^T = [[1, 1,  1, 1,  1, 0],
           [0, -4, -4,  1, 1, 0],           [-1/6,  -1/6,  -1/6 ],             [0, 1, -1, 2, -2, 0],
           [0,  4, -4, -1, 1, 0],           [-1/6,   1/6,  -1/6 ],             [0, 1,  1, 4,  4, 0],
           [0, -2, -1,  2, 1, 0],           [ 1/24,  1/12,  1/6 ],             [0, 1, -1, 8, -8, 1]]
           [0,  2, -1, -2, 1, 0],           [ 1/24, -1/12,  1/6 ],
           [0,  4,  0, -5, 0, 1]]           [ 0,     0,     1   ]]

The three passes of training reuse the same algebra:

* forward: the formula above;
* input gradient: for stride 1 the input gradient is a 3x3 convolution of the output gradient with the kernel
  flipped in both axes and its two channel axes swapped, padded by 2 - (forward padding) on each side, so it runs
  through the forward formula;
* weight gradient: the adjoint of the forward formula with respect to g. With Ghat = A gY A^T for each m x m tile
  of the output gradient (zero-padded to whole tiles), dL/dU[xi, nu] (O x C) = Ghat[xi, nu] (O x P) @
  V[xi, nu]^T (P x C) summed over the tiles, and gW = G^T (dL/dU) G.

Rounding: Winograd is algebraically equal to the direct sum; in float64 both agree to ~1e-15 relative to the
largest |output|. In float32 the transforms amplify rounding: with N(0,1) inputs and weights, over the layers of
``tests/kernels/test_winograd.py`` (3 to 256 channels), the largest error relative to the largest |value| is
2e-7 to 7e-7 for F(2x2, 3x3) (as im2col's), and 1e-6 to 1.3e-5 for F(4x4, 3x3), growing with the channels;
the test asserts 1e-12 in float64 and 2e-6 and 5e-5 in float32 (see ``docs/convolution.md``).

Tiles are cut in batched NumPy: a strided view of the padded images, of shape (a, a, C, n, tiles_h, tiles_w), copied
once; each transform is two small GEMMs (along the tile's rows, then its columns). No Python loop runs over tiles.
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any, Sequence

from ..backend import get_array_module
from .chunking import batch_chunks
from .geometry import Conv2dGeometry

__all__ = ["WinogradTile", "F2x2_3x3", "F4x4_3x3", "TILES", "unsupported_reason", "winograd_forward",
           "winograd_input_grad", "winograd_weight_grad"]

_F = Fraction


@dataclasses.dataclass(frozen=True)
class WinogradTile:
    """One Winograd algorithm F(m x m, 3 x 3): the output block size m and its matrices B^T (a x a), G (a x 3) and
    A^T (m x a), a = m + 2, as exact fractions."""

    name: str
    output: int
    input_transform: tuple   # B^T
    filter_transform: tuple  # G
    output_transform: tuple  # A^T

    @property
    def size(self) -> int:
        """a, the side of an input tile."""
        return self.output + 2

    def matrices(self, xp: Any, dtype: Any) -> tuple[Any, Any, Any]:
        """(B^T, G, A^T) as arrays of ``dtype``."""
        return tuple(xp.asarray([[float(v) for v in row] for row in matrix], dtype=dtype)
                     for matrix in (self.input_transform, self.filter_transform, self.output_transform))


F2x2_3x3 = WinogradTile(
    "F(2x2,3x3)", 2,
    input_transform=((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
    filter_transform=((1, 0, 0), (_F(1, 2), _F(1, 2), _F(1, 2)), (_F(1, 2), _F(-1, 2), _F(1, 2)), (0, 0, 1)),
    output_transform=((1, 1, 1, 0), (0, 1, -1, -1)))

F4x4_3x3 = WinogradTile(
    "F(4x4,3x3)", 4,
    input_transform=((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0), (0, -2, -1, 2, 1, 0),
                     (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1)),
    filter_transform=((_F(1, 4), 0, 0), (_F(-1, 6), _F(-1, 6), _F(-1, 6)), (_F(-1, 6), _F(1, 6), _F(-1, 6)),
                      (_F(1, 24), _F(1, 12), _F(1, 6)), (_F(1, 24), _F(-1, 12), _F(1, 6)), (0, 0, 1)),
    output_transform=((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1)))

TILES = {"winograd2x2": F2x2_3x3, "winograd4x4": F4x4_3x3}


def unsupported_reason(weight_shape: Sequence[int], geometry: Conv2dGeometry) -> str | None:
    """Why Winograd F(m x m, 3 x 3) cannot compute this convolution, or None when it can (3x3 kernel, stride 1,
    dilation 1, one group, padding at most 2 on each side so that the input gradient is a convolution too)."""
    problems = []
    if tuple(weight_shape[2:]) != (3, 3):
        problems.append(f"kernel {weight_shape[2]}x{weight_shape[3]} (needs 3x3)")
    if geometry.stride != (1, 1):
        problems.append(f"stride {geometry.stride} (needs 1)")
    if geometry.dilation != (1, 1):
        problems.append(f"dilation {geometry.dilation} (needs 1)")
    if geometry.groups != 1:
        problems.append(f"groups={geometry.groups} (needs 1)")
    if max(max(pair) for pair in geometry.padding) > 2:
        problems.append(f"padding {geometry.padding} (needs at most 2 per side)")
    return "; ".join(problems) or None


class _Tiling:
    """How a tile size covers one convolution's output: tile counts, padded extents, chunks of the batch."""

    def __init__(self, xp: Any, tile: WinogradTile, batch: int, channels: int, out_channels: int, out_h: int,
                 out_w: int, dtype: Any):
        self.xp, self.tile = xp, tile
        self.m, self.a = tile.output, tile.size
        self.out_h, self.out_w = out_h, out_w
        self.tiles_h, self.tiles_w = -(-out_h // self.m), -(-out_w // self.m)
        self.per_image = self.tiles_h * self.tiles_w
        self.B_T, self.G, self.A_T = tile.matrices(xp, dtype)
        transformed = self.a * self.a * self.per_image * (channels + out_channels) * dtype.itemsize
        self.chunks = list(batch_chunks(batch, 2 * transformed, xp))
        chunk = self.chunks[0].stop if self.chunks else 0
        self.padded = xp.zeros((chunk, channels, self.tiles_h * self.m + 2, self.tiles_w * self.m + 2), dtype)

    def input_tiles(self, x: Any, padding: tuple, part: slice) -> Any:
        """V = B^T d B for every a x a tile d of images ``part`` of ``x`` (zero-padded): (a*a, C, P), P = n * tiles."""
        xp, a, m = self.xp, self.a, self.m
        n, channels, height, width = x[part].shape
        (top, _), (left, _) = padding
        padded = self.padded[:n]
        padded[:, :, top:top + height, left:left + width] = x[part]
        batch, channel, row, column = padded.strides
        tiles = xp.ascontiguousarray(xp.lib.stride_tricks.as_strided(
            padded, shape=(a, a, channels, n, self.tiles_h, self.tiles_w),
            strides=(row, column, channel, batch, m * row, m * column)))
        return self._transform_both_axes(self.B_T, tiles).reshape(a * a, channels, n * self.per_image)

    def output_tiles(self, transformed: Any, n: int) -> Any:
        """Y = A^T M A for every tile: (a*a, O, P) to the images (n, O, tiles_h*m, tiles_w*m), a strided view."""
        out_channels = transformed.shape[1]
        blocks = self._transform_both_axes(self.A_T, transformed.reshape(self.a, self.a, -1))
        blocks = blocks.reshape(self.m, self.m, out_channels, n, self.tiles_h, self.tiles_w)
        return blocks.transpose(3, 2, 4, 0, 5, 1).reshape(n, out_channels, self.tiles_h * self.m,
                                                          self.tiles_w * self.m)

    def gradient_tiles(self, grad_output: Any, part: slice) -> Any:
        """Ghat = A gY A^T for every m x m tile of the output gradient (zero beyond it): (a*a, O, P)."""
        xp, m = self.xp, self.m
        grad = grad_output[part]
        n, out_channels = grad.shape[:2]
        blocks = xp.zeros((m, m, out_channels, n, self.tiles_h, self.tiles_w), grad.dtype)
        padded = xp.zeros((n, out_channels, self.tiles_h * m, self.tiles_w * m), grad.dtype)
        padded[:, :, :self.out_h, :self.out_w] = grad
        blocks[...] = padded.reshape(n, out_channels, self.tiles_h, m, self.tiles_w, m).transpose(3, 5, 1, 0, 2, 4)
        return self._transform_both_axes(self.A_T.T, blocks).reshape(self.a * self.a, out_channels,
                                                                     n * self.per_image)

    def _transform_both_axes(self, left: Any, tiles: Any) -> Any:
        """left @ t @ left^T for every tile t, with ``tiles`` of shape (k, k, ...) holding t[i, j] along its first two
        axes: two GEMMs, rows then columns, each over all tiles at once. Returns (r, r, ...) for left (r x k)."""
        xp = self.xp
        k, rest = tiles.shape[0], tiles.shape[2:]
        rows = xp.matmul(left, tiles.reshape(k, -1)).reshape(left.shape[0], k, -1)   # (r, k, rest)
        return xp.matmul(left, rows).reshape(left.shape[0], left.shape[0], *rest)   # (r, r, rest)


def _filter_tiles(xp: Any, G: Any, weight: Any) -> Any:
    """U = G g G^T for every filter g (O, C, 3, 3): (a*a, O, C)."""
    transformed = xp.matmul(xp.matmul(G, weight), G.T)                           # (O, C, a, a)
    a = G.shape[0]
    return xp.ascontiguousarray(transformed.transpose(2, 3, 0, 1)).reshape(a * a, *weight.shape[:2])


def _output_size(input_shape: Sequence[int], padding: tuple) -> tuple[int, int]:
    (top, bottom), (left, right) = padding
    return input_shape[2] + top + bottom - 2, input_shape[3] + left + right - 2


def _convolve(x: Any, weight: Any, bias: Any, padding: tuple, tile: WinogradTile) -> Any:
    """The forward formula for a 3x3 stride-1 convolution of ``x`` with ``padding`` ((t, b), (l, r))."""
    xp = get_array_module(x)
    batch, channels = x.shape[:2]
    out_channels = weight.shape[0]
    out_h, out_w = _output_size(x.shape, padding)
    tiling = _Tiling(xp, tile, batch, channels, out_channels, out_h, out_w, x.dtype)
    filters = _filter_tiles(xp, tiling.G, weight.astype(x.dtype, copy=False))
    y = xp.empty((batch, out_channels, out_h, out_w), x.dtype)
    for part in tiling.chunks:
        products = xp.matmul(filters, tiling.input_tiles(x, padding, part))      # (a*a, O, P)
        y[part] = tiling.output_tiles(products, part.stop - part.start)[:, :, :out_h, :out_w]
    if bias is not None:
        y += bias.reshape(1, out_channels, 1, 1)
    return y


def winograd_forward(x: Any, weight: Any, bias: Any, geometry: Conv2dGeometry,
                     tile: WinogradTile = F2x2_3x3) -> Any:
    """y = conv2d(x, weight, bias) for a geometry that :func:`unsupported_reason` accepts."""
    return _convolve(x, weight, bias, geometry.padding, tile)


def winograd_input_grad(grad_output: Any, weight: Any, input_shape: Sequence[int], geometry: Conv2dGeometry,
                        tile: WinogradTile = F2x2_3x3) -> Any:
    """gx = the 3x3 convolution of gy with the flipped kernel w[:, :, ::-1, ::-1] as (C, O, 3, 3), padded by
    2 - p on each side where the forward pass was padded by p."""
    xp = get_array_module(grad_output)
    flipped = xp.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    (top, bottom), (left, right) = geometry.padding
    padding = ((2 - top, 2 - bottom), (2 - left, 2 - right))
    return _convolve(grad_output, flipped, None, padding, tile)


def winograd_weight_grad(x: Any, grad_output: Any, weight_shape: Sequence[int], geometry: Conv2dGeometry,
                         tile: WinogradTile = F2x2_3x3) -> Any:
    """gW = G^T (sum over tiles of Ghat ⊙ V) G: per position (xi, nu) one GEMM Ghat (O x P) @ V^T (P x C)."""
    xp = get_array_module(x)
    batch, channels = x.shape[:2]
    out_channels = weight_shape[0]
    out_h, out_w = grad_output.shape[2:]
    tiling = _Tiling(xp, tile, batch, channels, out_channels, out_h, out_w, x.dtype)
    total = xp.zeros((tiling.a * tiling.a, out_channels, channels), x.dtype)
    for part in tiling.chunks:
        inputs = tiling.input_tiles(x, geometry.padding, part)                   # (a*a, C, P)
        gradients = tiling.gradient_tiles(grad_output, part)                     # (a*a, O, P)
        total += xp.matmul(gradients, inputs.transpose(0, 2, 1))
    by_position = total.reshape(tiling.a, tiling.a, out_channels, channels).transpose(2, 3, 0, 1)
    return xp.ascontiguousarray(xp.matmul(xp.matmul(tiling.G.T, by_position), tiling.G))
