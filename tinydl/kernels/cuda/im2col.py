"""Fused im2col and col2im straight from and to NCHW images: one thread per output element, no padded
channels-last copy, no per-tap passes (see :mod:`tinydl.kernels.im2col` for the layout and the plain path).

    im2col   cols[b, oh, ow, g, i, j, c] = x[b, g*Cg + c, oh*sh - top + i*dh, ow*sw - left + j*dw]   (0 outside)
    col2im   x[b, g*Cg + c, h, w] = sum over the taps (i, j) and positions (oh, ow) with
             oh*sh + i*dh = h + top and ow*sw + j*dw = w + left of cols[b, oh, ow, g, i, j, c]

col2im is the adjoint of im2col, computed as a gather (each input element sums the patch entries copied from it),
so it needs no atomic additions and is deterministic. Both kernels take the element strides of the strided array
(the input of im2col, the columns of col2im), so views need no copy; the array they write is C-contiguous.
"""
from __future__ import annotations

from typing import Any

from ..geometry import Conv2dGeometry
from .build import kernel, launch, register, size

__all__ = ["im2col_nchw", "col2im_nchw"]

IM2COL = register("im2col", r"""
// The convolution geometry as scalars: image size, output size, groups' channels, kernel, stride, padding,
// dilation.
#define GEOMETRY long long channels, long long height, long long width, long long out_h, long long out_w, \
                 long long groups, long long group_channels, long long kernel_h, long long kernel_w, \
                 long long stride_h, long long stride_w, long long top, long long left, long long dilation_h, \
                 long long dilation_w

extern "C" __global__ void im2col(const real* x, long long xs0, long long xs1, long long xs2, long long xs3,
                                  real* cols, long long batch, GEOMETRY) {
    FOR_EACH_INDEX(k, batch * out_h * out_w * groups * kernel_h * kernel_w * group_channels) {
        long long rest = k;                    // k walks cols[b, oh, ow, g, i, j, c] in C order
        long long c = rest % group_channels; rest /= group_channels;
        long long j = rest % kernel_w; rest /= kernel_w;
        long long i = rest % kernel_h; rest /= kernel_h;
        long long g = rest % groups; rest /= groups;
        long long ow = rest % out_w; rest /= out_w;
        long long oh = rest % out_h; long long b = rest / out_h;
        long long h = oh * stride_h - top + i * dilation_h, w = ow * stride_w - left + j * dilation_w;
        bool inside = h >= 0 && h < height && w >= 0 && w < width;
        cols[k] = inside ? x[b * xs0 + (g * group_channels + c) * xs1 + h * xs2 + w * xs3] : (real)0;
    }
}

extern "C" __global__ void col2im(const real* cols, long long cs0, long long cs1, long long cs2, long long cs3,
                                  long long cs4, long long cs5, long long cs6, real* x, long long batch, GEOMETRY) {
    FOR_EACH_INDEX(k, batch * channels * height * width) {
        long long w = k % width, h = (k / width) % height, channel = (k / (width * height)) % channels;
        long long b = k / (width * height * channels);
        long long g = channel / group_channels, c = channel % group_channels;
        const real* base = cols + b * cs0 + g * cs3 + c * cs6;
        real total = 0;
        for (long long i = 0; i < kernel_h; ++i) {
            long long th = h + top - i * dilation_h;             // = oh * stride_h for a patch that used (h, w)
            if (th < 0) break;
            if (th % stride_h != 0 || th / stride_h >= out_h) continue;
            for (long long j = 0; j < kernel_w; ++j) {
                long long tw = w + left - j * dilation_w;
                if (tw < 0) break;
                if (tw % stride_w != 0 || tw / stride_w >= out_w) continue;
                total += base[(th / stride_h) * cs1 + (tw / stride_w) * cs2 + i * cs4 + j * cs5];
            }
        }
        x[k] = total;
    }
}
""")


def _geometry(geometry: Conv2dGeometry, channels: int, height: int, width: int, group_channels: int,
              kernel_size: tuple[int, int]) -> tuple[Any, ...]:
    """The kernels' ``GEOMETRY`` arguments."""
    out_h, out_w = geometry.output_size(height, width, kernel_size)
    (top, _), (left, _) = geometry.padding
    values = (channels, height, width, out_h, out_w, geometry.groups, group_channels, *kernel_size,
              *geometry.stride, top, left, *geometry.dilation)
    return tuple(size(value) for value in values)


def _element_strides(array: Any) -> tuple[Any, ...]:
    return tuple(size(stride // array.itemsize) for stride in array.strides)


def im2col_nchw(x: Any, geometry: Conv2dGeometry, out: Any) -> Any:
    """Write the patches of the NCHW images ``x`` (any strides) into the C-contiguous ``out`` of shape
    (n, OH, OW, groups, kh, kw, Cg)."""
    batch, channels, height, width = x.shape
    kernel_h, kernel_w, group_channels = out.shape[4:]
    launch(kernel(IM2COL, x.dtype.name, "im2col"), out.size,
           (x, *_element_strides(x), out, size(batch),
            *_geometry(geometry, channels, height, width, group_channels, (kernel_h, kernel_w))))
    return out


def col2im_nchw(cols: Any, geometry: Conv2dGeometry, out: Any) -> Any:
    """Overwrite the C-contiguous NCHW ``out`` (n, C, H, W) with the sum of the patch entries of ``cols`` (any
    strides, shape (n, OH, OW, groups, kh, kw, Cg)) that im2col copied from each position."""
    batch, channels, height, width = out.shape
    kernel_h, kernel_w, group_channels = cols.shape[4:]
    launch(kernel(IM2COL, cols.dtype.name, "col2im"), out.size,
           (cols, *_element_strides(cols), out, size(batch),
            *_geometry(geometry, channels, height, width, group_channels, (kernel_h, kernel_w))))
    return out
