"""Catalogue entries for max_pool2d, avg_pool2d and adaptive_avg_pool2d, with loop references written from
PyTorch's documented rules (output size with ceil_mode, -inf padding for max, the divisor of count_include_pad).

Max pooling is differentiable only where each window has a unique maximum, so its inputs are a random permutation
of well-separated values (no ties, no near ties for the finite differences to cross). Every entry is linear in
its input once the argmax is fixed, and differentiable to any order, so gradgradcheck runs for all of them.
"""
import itertools
import math

import numpy as np
from hypothesis import strategies as st

from tinydl.functional.pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from tinydl.testing import Case, OpSpec, arrays


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def pool_output_size(size, kernel, stride, padding, ceil_mode):
    """PyTorch's rule: floor (or ceil) of (size + 2 padding - kernel) / stride, plus one; in ceil_mode the last
    window must start inside the input or its left padding."""
    steps = (size + 2 * padding - kernel + (stride - 1 if ceil_mode else 0)) // stride
    count = steps + 1
    if ceil_mode and (count - 1) * stride >= size + padding:
        count -= 1
    return count


def _windows(x, kernel_size, stride, padding, ceil_mode):
    """Yield (b, c, oh, ow, rows, columns, full_rows, full_columns): the input rows/columns a window covers inside
    the input, and the ones it covers inside the padded input (for the divisor)."""
    (kh, kw), (ph, pw) = _pair(kernel_size), _pair(padding)
    sh, sw = _pair(stride if stride is not None else kernel_size)
    batch, channels, height, width = x.shape
    out_h = pool_output_size(height, kh, sh, ph, ceil_mode)
    out_w = pool_output_size(width, kw, sw, pw, ceil_mode)
    for b, c, oh, ow in itertools.product(range(batch), range(channels), range(out_h), range(out_w)):
        top, left = oh * sh - ph, ow * sw - pw
        full_rows = range(top, min(top + kh, height + ph))
        full_columns = range(left, min(left + kw, width + pw))
        rows = [r for r in full_rows if 0 <= r < height]
        columns = [q for q in full_columns if 0 <= q < width]
        yield (b, c, oh, ow, rows, columns, full_rows, full_columns), (out_h, out_w)


def max_pool2d_reference(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    out = {}
    shape = None
    for (b, c, oh, ow, rows, columns, _, _), shape in _windows(x, kernel_size, stride, padding, ceil_mode):
        out[b, c, oh, ow] = max(x[b, c, r, q] for r in rows for q in columns)
    y = np.zeros(x.shape[:2] + shape)
    for index, value in out.items():
        y[index] = value
    return y


def avg_pool2d_reference(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    out = {}
    shape = None
    for (b, c, oh, ow, rows, columns, full_rows, full_columns), shape in _windows(x, kernel_size, stride, padding,
                                                                                  ceil_mode):
        total = sum(x[b, c, r, q] for r in rows for q in columns)
        divisor = len(full_rows) * len(full_columns) if count_include_pad else len(rows) * len(columns)
        out[b, c, oh, ow] = total / divisor
    y = np.zeros(x.shape[:2] + shape)
    for index, value in out.items():
        y[index] = value
    return y


def adaptive_avg_pool2d_reference(x, output_size):
    out_h, out_w = _pair(output_size)
    out_h, out_w = out_h or x.shape[2], out_w or x.shape[3]
    y = np.zeros(x.shape[:2] + (out_h, out_w))
    for oh, ow in itertools.product(range(out_h), range(out_w)):
        rows = slice(oh * x.shape[2] // out_h, math.ceil((oh + 1) * x.shape[2] / out_h))
        columns = slice(ow * x.shape[3] // out_w, math.ceil((ow + 1) * x.shape[3] / out_w))
        y[:, :, oh, ow] = x[:, :, rows, columns].mean(axis=(2, 3))
    return y


@st.composite
def pool_arguments(draw, max_side=7):
    """(input shape, keyword arguments) for a valid max/avg pooling call."""
    kernel = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = None if draw(st.booleans()) else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    sides = [draw(st.integers(max(1, k - 2 * p), max_side)) for k, p in zip(kernel, padding)]
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *sides)
    kwargs = {"kernel_size": kernel if kernel[0] != kernel[1] or draw(st.booleans()) else kernel[0],
              "stride": stride, "padding": padding if padding[0] != padding[1] else padding[0],
              "ceil_mode": draw(st.booleans())}
    return shape, kwargs


def distinct_values(draw, shape):
    """An array of ``shape`` holding a random permutation of values spaced 0.1 apart (no ties)."""
    size = int(np.prod(shape))
    order = draw(st.permutations(range(size)))
    return (np.array(order, dtype=np.float64).reshape(shape) - size / 2) * 0.1


@st.composite
def max_pool_cases(draw):
    shape, kwargs = draw(pool_arguments())
    return Case((distinct_values(draw, shape),), kwargs)


@st.composite
def avg_pool_cases(draw):
    shape, kwargs = draw(pool_arguments())
    kwargs["count_include_pad"] = draw(st.booleans())
    return Case((draw(arrays(shape)),), kwargs)


@st.composite
def adaptive_cases(draw):
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    out_h, out_w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    output_size = out_h if out_h == out_w and draw(st.booleans()) else (draw(st.sampled_from([out_h, None])), out_w)
    return Case((draw(arrays(shape)),), {"output_size": output_size})


SPECS = [
    OpSpec("max_pool2d", max_pool2d, max_pool_cases(), max_pool2d_reference, max_examples=10),
    OpSpec("avg_pool2d", avg_pool2d, avg_pool_cases(), avg_pool2d_reference, max_examples=10),
    OpSpec("adaptive_avg_pool2d", adaptive_avg_pool2d, adaptive_cases(), adaptive_avg_pool2d_reference,
           max_examples=10),
]
