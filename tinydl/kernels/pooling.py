"""Max and average pooling over kh x kw windows, forward and backward.

Window (oh, ow) of an (N, C, H, W) input covers rows oh*sh - ph ... oh*sh - ph + kh - 1 and the matching columns.
All kernels here loop over the kh*kw *taps* of a window, never over windows: tap (i, j) of every window at once is
the strided slice ``x_padded[:, :, i::sh, j::sw]`` (cut to OH x OW), so each step is one array operation.

On a GPU with fusion on, max pooling forward and scatter are one CUDA kernel each (:mod:`.cuda.pooling`).

* max forward: the running maximum over the taps, and ``argmax``, the index ``i*kw + j`` of the tap that holds it.
  A tap replaces the current maximum only when it is strictly greater (or NaN), so among tied values the first
  tap in row-major order wins, as in PyTorch, and the gradient goes to that one element only.
* max backward (scatter): tap (i, j) of the input gradient receives ``gy * (argmax == i*kw + j)``.
* max gather (the adjoint of the scatter, for second derivatives): ``sum over taps of x_tap * (argmax == tap)``.
* average forward: ``sum over taps / divisor``; backward: every tap receives ``gy / divisor``.

Where windows overlap (stride < kernel) an input position belongs to several windows and the backward *adds* its
taps, col2im-style; where they do not, it *assigns* them; and where they tile the input exactly (stride = kernel,
no padding, sizes divisible) no buffer needs zeroing at all. Taps are first copied into a contiguous buffer: every
later operation then runs on contiguous memory, which NumPy processes several times faster than strided views.
On NumPy the batch is split across threads (:mod:`.threads`), each thread working on its own images.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

from ..backend import get_array_module
from .chunking import batch_chunks
from .cuda import pooling as fused
from .cuda.build import can_fuse
from .geometry import Pool2dGeometry
from .scratch import scratch
from .threads import parallel_for

__all__ = ["max_pool2d_forward", "max_pool2d_scatter", "max_pool2d_gather", "avg_pool2d_forward",
           "avg_pool2d_backward", "avg_pool2d_divisor"]


def _taps(geometry: Pool2dGeometry) -> Iterator[tuple[int, int, int]]:
    """(index, i, j) for every tap of a window, in row-major order."""
    kernel_h, kernel_w = geometry.kernel_size
    for i in range(kernel_h):
        for j in range(kernel_w):
            yield i * kernel_w + j, i, j


def _tap(padded: Any, i: int, j: int, geometry: Pool2dGeometry, out_size: Sequence[int]) -> Any:
    """Tap (i, j) of every window: a strided (n, C, OH, OW) view of the padded input."""
    (stride_h, stride_w), (out_h, out_w) = geometry.stride, out_size
    return padded[:, :, i:i + stride_h * (out_h - 1) + 1:stride_h, j:j + stride_w * (out_w - 1) + 1:stride_w]


def _padded(x: Any, geometry: Pool2dGeometry, fill: float) -> Any:
    """``x`` surrounded by ``fill`` wherever a window reaches outside it (``x`` itself when none does)."""
    height, width = x.shape[2:]
    padded_h, padded_w = geometry.padded_size(height, width)
    if (padded_h, padded_w) == (height, width):
        return x
    xp = get_array_module(x)
    top, left = geometry.padding
    padded = xp.full(x.shape[:2] + (padded_h, padded_w), fill, dtype=x.dtype)
    padded[:, :, top:top + height, left:left + width] = x
    return padded


def _scatter_taps(write_share: Callable[[int, Any, bool, slice], None], like: Any, input_shape: Sequence[int],
                  geometry: Pool2dGeometry) -> Any:
    """The input gradient, col2im-style: for every tap, ``write_share(index, target, accumulate, images)`` writes
    that tap's share for the ``images`` slice of the batch, (n, C, OH, OW), into ``target``, the strided view of the
    positions the tap came from; it adds when windows overlap (``accumulate``) and assigns otherwise. Slices of
    the batch run on separate threads (:mod:`.threads`). Then the padding is cut off."""
    xp = get_array_module(like)
    height, width = input_shape[2:]
    padded_h, padded_w = geometry.padded_size(height, width)
    out_size = geometry.output_size(height, width)
    padded_shape = tuple(input_shape[:2]) + (padded_h, padded_w)
    allocate = xp.empty if geometry.tiles(height, width) else xp.zeros  # tiles: every position gets assigned
    grad = allocate(padded_shape, like.dtype)

    def scatter(images: slice) -> None:
        for index, i, j in _taps(geometry):
            write_share(index, _tap(grad[images], i, j, geometry, out_size), geometry.overlapping, images)

    parallel_for(xp, grad.shape[0], scatter, grad[0].nbytes)
    if (padded_h, padded_w) == (height, width):
        return grad
    top, left = geometry.padding
    return xp.ascontiguousarray(grad[:, :, top:top + height, left:left + width])


def max_pool2d_forward(x: Any, geometry: Pool2dGeometry, with_argmax: bool = True) -> tuple[Any, Any]:
    """y[b, c, oh, ow] = max over the window's taps, and (when ``with_argmax``, else None) argmax = the row-major
    index of the first tap that holds it (uint8 when a window has at most 256 taps). NaN propagates: a NaN tap
    wins, as in PyTorch."""
    xp = get_array_module(x)
    height, width = x.shape[2:]
    out_size = geometry.output_size(height, width, "max_pool2d")
    taps = geometry.kernel_size[0] * geometry.kernel_size[1]
    index_dtype = xp.uint8 if taps <= 256 else xp.int32
    padded = _padded(x, geometry, float("-inf"))
    y = xp.empty(x.shape[:2] + out_size, x.dtype)
    argmax = xp.zeros(y.shape, index_dtype) if with_argmax else None

    def pool(images: slice) -> None:
        for chunk in batch_chunks(images.stop - images.start, 4 * y[0].nbytes, xp):
            part = slice(images.start + chunk.start, images.start + chunk.stop)
            best = y[part]
            value = scratch(xp, "max_pool2d.tap", best.shape, x.dtype)
            if with_argmax:
                better = scratch(xp, "max_pool2d.better", best.shape, bool)
                tap_index = scratch(xp, "max_pool2d.tap_index", best.shape, index_dtype)
            for index, i, j in _taps(geometry):
                tap = _tap(padded[part], i, j, geometry, out_size)
                if index == 0:
                    xp.copyto(best, tap)
                    continue
                xp.copyto(value, tap)
                if with_argmax:
                    xp.greater(value, best, out=better)
                    better |= xp.isnan(value)
                    # taps come in increasing index order, so "argmax = index where better" is a running maximum
                    xp.multiply(better, index_dtype(index), out=tap_index)
                    xp.maximum(argmax[part], tap_index, out=argmax[part])
                xp.maximum(best, value, out=best)

    parallel_for(xp, x.shape[0], pool, padded[0].nbytes)
    return y, argmax


def max_pool2d_scatter(grad_output: Any, argmax: Any, input_shape: Sequence[int], geometry: Pool2dGeometry) -> Any:
    """The input gradient of max pooling: each window's gradient goes to its argmax tap, nowhere else. On CuPy
    arrays with fusion on: one CUDA thread per input element, gathering from the windows that cover it."""
    if can_fuse(grad_output, argmax) and grad_output.shape == argmax.shape:
        return fused.max_pool2d_scatter(grad_output, argmax, input_shape, geometry)
    xp = get_array_module(grad_output)

    def write_share(index: int, target: Any, accumulate: bool, images: slice) -> None:
        if accumulate:
            target += grad_output[images] * (argmax[images] == index)
        else:
            xp.multiply(grad_output[images], argmax[images] == index, out=target)

    return _scatter_taps(write_share, grad_output, input_shape, geometry)


def max_pool2d_gather(x: Any, argmax: Any, geometry: Pool2dGeometry) -> Any:
    """The adjoint of :func:`max_pool2d_scatter`: y[window] = x at the window's argmax tap."""
    xp = get_array_module(x)
    out_size = argmax.shape[2:]
    padded = _padded(x, geometry, 0.0)
    y = xp.zeros(argmax.shape, x.dtype)
    for index, i, j in _taps(geometry):
        y += _tap(padded, i, j, geometry, out_size) * (argmax == index)
    return y


def avg_pool2d_divisor(xp: Any, input_size: Sequence[int], geometry: Pool2dGeometry, count_include_pad: bool,
                       dtype: Any) -> Any:
    """The (OH, OW) number of elements each window averages, by PyTorch's rule: a window is first cut to the
    padded input, and with ``count_include_pad=False`` further to the input itself."""
    counts = []
    for size, out, k, s, p in zip(input_size, geometry.output_size(*input_size), geometry.kernel_size,
                                  geometry.stride, geometry.padding):
        start = xp.arange(out) * s - p
        end = xp.minimum(start + k, size + p)
        if not count_include_pad:
            start, end = xp.maximum(start, 0), xp.minimum(end, size)
        counts.append((end - start).astype(dtype))
    return counts[0][:, None] * counts[1][None, :]


def avg_pool2d_forward(x: Any, geometry: Pool2dGeometry, count_include_pad: bool) -> Any:
    """y = (sum over the window's taps of x_padded) / divisor, zero padding."""
    xp = get_array_module(x)
    height, width = x.shape[2:]
    out_size = geometry.output_size(height, width, "avg_pool2d")
    padded = _padded(x, geometry, 0.0)
    y = xp.empty(x.shape[:2] + out_size, x.dtype)
    for index, i, j in _taps(geometry):
        tap = _tap(padded, i, j, geometry, out_size)
        if index == 0:
            xp.copyto(y, tap)
        else:
            y += tap
    y /= avg_pool2d_divisor(xp, (height, width), geometry, count_include_pad, x.dtype)
    return y


def avg_pool2d_backward(grad_output: Any, input_shape: Sequence[int], geometry: Pool2dGeometry,
                        count_include_pad: bool) -> Any:
    """The input gradient of average pooling: every tap of window w receives gy[w] / divisor[w]."""
    xp = get_array_module(grad_output)
    share = grad_output / avg_pool2d_divisor(xp, input_shape[2:], geometry, count_include_pad, grad_output.dtype)

    def write_share(index: int, target: Any, accumulate: bool, images: slice) -> None:
        if accumulate:
            target += share[images]
        else:
            target[...] = share[images]

    return _scatter_taps(write_share, grad_output, input_shape, geometry)
