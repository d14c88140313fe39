"""Fused max pooling over an (N, C, H, W) input: one thread per output for the forward (it walks its window's
taps), one thread per input element for the backward (it walks the windows that contain it), so neither needs a
padded copy, a per-tap pass over memory, or atomic additions (the backward is deterministic).

Window (oh, ow) covers padded rows oh*sh ... oh*sh + kh - 1 (input row = padded row - ph) and the matching
columns; positions outside the input count as -inf. Forward: y = the window's maximum and argmax = the row-major
index i*kw + j of the first tap that holds it (a NaN tap wins, as in the plain path). Backward: input position
(h, w) sits at tap (h + ph - oh*sh, w + pw - ow*sw) of every window that covers it, and

    gx[h, w] = sum over those windows of gy[oh, ow] [argmax[oh, ow] = that tap].

The fused argmax is int32 (the plain path uses uint8 for small windows); both paths read either.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..geometry import Pool2dGeometry
from .build import as_contiguous, empty, kernel, launch, register, size

__all__ = ["max_pool2d_forward", "max_pool2d_scatter"]

POOLING = register("pooling", r"""
// The window geometry, passed as ten scalars (input size, output size, kernel, stride, padding).
#define WINDOW long long height, long long width, long long out_h, long long out_w, long long kernel_h, \
               long long kernel_w, long long stride_h, long long stride_w, long long pad_h, long long pad_w

extern "C" __global__ void max_pool_forward(const real* x, real* y, int* argmax, WINDOW, long long planes) {
    FOR_EACH_INDEX(k, planes * out_h * out_w) {
        long long ow = k % out_w, oh = (k / out_w) % out_h, plane = k / (out_w * out_h);
        const real* image = x + plane * height * width;
        real best = NEGATIVE_INFINITY;
        int best_tap = 0;
        for (long long i = 0; i < kernel_h; ++i) {
            long long h = oh * stride_h - pad_h + i;
            for (long long j = 0; j < kernel_w; ++j) {
                long long w = ow * stride_w - pad_w + j;
                bool inside = h >= 0 && h < height && w >= 0 && w < width;
                real value = inside ? image[h * width + w] : NEGATIVE_INFINITY;
                int tap = (int)(i * kernel_w + j);
                if (tap == 0 || value > best || isnan(value)) { best = value; best_tap = tap; }
            }
        }
        y[k] = best;
        argmax[k] = best_tap;
    }
}

extern "C" __global__ void max_pool_backward(const real* gy, const int* argmax, real* gx, WINDOW,
                                             long long planes) {
    FOR_EACH_INDEX(k, planes * height * width) {
        long long w = k % width, h = (k / width) % height, plane = k / (width * height);
        long long hp = h + pad_h, wp = w + pad_w;          // the position in the padded input
        // windows oh with oh*sh <= hp < oh*sh + kh, i.e. ceil((hp - kh + 1) / sh) <= oh <= floor(hp / sh)
        long long first_h = hp < kernel_h ? 0 : (hp - kernel_h) / stride_h + 1;
        long long first_w = wp < kernel_w ? 0 : (wp - kernel_w) / stride_w + 1;
        long long last_h = min(hp / stride_h, out_h - 1), last_w = min(wp / stride_w, out_w - 1);
        const long long offset = plane * out_h * out_w;
        real total = 0;
        for (long long oh = first_h; oh <= last_h; ++oh) {
            for (long long ow = first_w; ow <= last_w; ++ow) {
                long long tap = (hp - oh * stride_h) * kernel_w + (wp - ow * stride_w);
                long long window = offset + oh * out_w + ow;
                if (argmax[window] == tap) total += gy[window];
            }
        }
        gx[k] = total;
    }
}
""")


def _window(geometry: Pool2dGeometry, height: int, width: int) -> tuple[Any, ...]:
    """The kernels' ``WINDOW`` arguments: input size, output size, kernel, stride, padding (ten long longs)."""
    out_h, out_w = geometry.output_size(height, width)
    values = (height, width, out_h, out_w, *geometry.kernel_size, *geometry.stride, *geometry.padding)
    return tuple(size(value) for value in values)


def max_pool2d_forward(x: Any, geometry: Pool2dGeometry, with_argmax: bool = True) -> tuple[Any, Any]:
    """(y, argmax) of max pooling as :func:`tinydl.kernels.pooling.max_pool2d_forward` returns them (argmax
    int32, or None when not ``with_argmax``)."""
    x = as_contiguous(x)
    batch, channels, height, width = x.shape
    out_h, out_w = geometry.output_size(height, width, "max_pool2d")
    y = empty(x, (batch, channels, out_h, out_w))
    argmax = empty(x, y.shape, "int32")
    launch(kernel(POOLING, x.dtype.name, "max_pool_forward"), y.size,
           (x, y, argmax, *_window(geometry, height, width), size(batch * channels)))
    return y, argmax if with_argmax else None


def max_pool2d_scatter(grad_output: Any, argmax: Any, input_shape: Sequence[int], geometry: Pool2dGeometry) -> Any:
    """The input gradient of max pooling, as :func:`tinydl.kernels.pooling.max_pool2d_scatter`."""
    grad_output = as_contiguous(grad_output)
    argmax = as_contiguous(argmax.astype("int32", copy=False))
    batch, channels, height, width = input_shape
    grad = empty(grad_output, tuple(input_shape))
    launch(kernel(POOLING, grad_output.dtype.name, "max_pool_backward"), grad.size,
           (grad_output, argmax, grad, *_window(geometry, height, width), size(batch * channels)))
    return grad
