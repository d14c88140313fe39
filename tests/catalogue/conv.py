"""Catalogue entry for conv2d, and its independent reference: the definition written as nested loops.

The strategy draws valid combinations of every argument: groups (1 to 3), channels per group, kernel sizes
1-3 per axis, strides 1-3, dilations 1-2, padding as an int, a pair, "valid" or (stride 1) "same", odd sizes,
batch 1 or 2, with and without bias. conv2d is differentiable to any order, so gradgradcheck runs too.
"""
import itertools

import numpy as np
from hypothesis import strategies as st

from tinydl.functional.conv import conv2d
from tinydl.testing import Case, OpSpec, arrays


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def conv2d_reference(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """y[b, o, p, q] = bias[o] + sum_{c, i, j} w[o, c, i, j] x_pad[b, (o // Og) Cg + c, p sh + i dh, q sw + j dw]."""
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    out_channels, per_group, kh, kw = weight.shape
    if padding == "valid":
        padding = 0
    if padding == "same":
        totals = [dh * (kh - 1), dw * (kw - 1)]
        pads = [(t // 2, t - t // 2) for t in totals]
    else:
        pads = [(p, p) for p in _pair(padding)]
    padded = np.pad(x, ((0, 0), (0, 0), pads[0], pads[1]))
    out_h = (padded.shape[2] - dh * (kh - 1) - 1) // sh + 1
    out_w = (padded.shape[3] - dw * (kw - 1) - 1) // sw + 1
    out_per_group = out_channels // groups
    y = np.zeros((x.shape[0], out_channels, out_h, out_w))
    for b, o, p, q in itertools.product(range(x.shape[0]), range(out_channels), range(out_h), range(out_w)):
        total = 0.0 if bias is None else bias[o]
        for c, i, j in itertools.product(range(per_group), range(kh), range(kw)):
            total += weight[o, c, i, j] * padded[b, (o // out_per_group) * per_group + c, p * sh + i * dh,
                                                 q * sw + j * dw]
        y[b, o, p, q] = total
    return y


def _maybe_pair(draw, first, second):
    """An int when both are equal and the draw says so, else the pair."""
    return first if first == second and draw(st.booleans()) else (first, second)


@st.composite
def conv2d_arguments(draw, max_side=7):
    """(input shape, weight shape, keyword arguments) for a valid conv2d call."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    per_group, out_per_group = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dilation = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    choices = ["pair", "valid"] + (["same"] if stride == (1, 1) else [])
    kind = draw(st.sampled_from(choices))
    if kind == "pair":
        pads = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        padding, totals = _maybe_pair(draw, *pads), [2 * p for p in pads]
    else:
        padding, totals = kind, ([s - 1 for s in spans] if kind == "same" else [0, 0])
    sides = [draw(st.integers(max(1, span - total), max(1, span - total) + max_side - 3))
             for span, total in zip(spans, totals)]
    input_shape = (draw(st.integers(1, 2)), groups * per_group, *sides)
    weight_shape = (groups * out_per_group, per_group, *kernel)
    kwargs = {"stride": _maybe_pair(draw, *stride), "padding": padding, "dilation": _maybe_pair(draw, *dilation),
              "groups": groups}
    return input_shape, weight_shape, kwargs


@st.composite
def conv2d_cases(draw):
    input_shape, weight_shape, kwargs = draw(conv2d_arguments())
    tensors = [draw(arrays(input_shape)), draw(arrays(weight_shape))]
    if draw(st.booleans()):
        tensors.append(draw(arrays((weight_shape[0],))))
    return Case(tuple(tensors), kwargs)


SPECS = [
    OpSpec("conv2d", conv2d, conv2d_cases(), conv2d_reference, twice_differentiable=True, max_examples=10),
]
