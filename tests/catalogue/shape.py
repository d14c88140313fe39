"""Catalogue entries for shape ops, indexing and joining."""
import numpy as np
from hypothesis import strategies as st

import tinydl.functional as F
from tinydl.testing import Case, OpSpec, arrays, dims_for, shapes


@st.composite
def reshape_case(draw):
    x = draw(arrays(shapes(min_dims=1)))
    size = x.size
    divisors = [d for d in range(1, size + 1) if size % d == 0]
    first = draw(st.sampled_from(divisors))
    target = (first, size // first)
    if draw(st.booleans()):
        target = (-1, size // first)
    return Case((x,), {"shape": target})


@st.composite
def permute_case(draw):
    x = draw(arrays(shapes(min_dims=1)))
    return Case((x,), {"dims": tuple(draw(st.permutations(range(x.ndim))))})


@st.composite
def transpose_case(draw):
    x = draw(arrays(shapes(min_dims=1)))
    return Case((x,), {"dim0": draw(dims_for(x.ndim)), "dim1": draw(dims_for(x.ndim))})


@st.composite
def squeeze_case(draw):
    shape = tuple(draw(st.lists(st.sampled_from([1, 1, 2, 3]), min_size=1, max_size=4)))
    x = draw(arrays(shape))
    return Case((x,), {"dim": draw(st.one_of(st.none(), dims_for(x.ndim)))})


@st.composite
def unsqueeze_case(draw):
    x = draw(arrays())
    return Case((x,), {"dim": draw(st.integers(-x.ndim - 1, x.ndim))})


@st.composite
def flatten_case(draw):
    x = draw(arrays(shapes(min_dims=1, max_dims=4)))
    a, b = sorted([draw(st.integers(0, x.ndim - 1)), draw(st.integers(0, x.ndim - 1))])
    return Case((x,), {"start_dim": a, "end_dim": b})


@st.composite
def expand_case(draw):
    shape = draw(shapes(max_side=3))
    sizes = [draw(st.sampled_from([-1, 3])) if s == 1 else draw(st.sampled_from([-1, s])) for s in shape]
    sizes = draw(st.lists(st.integers(1, 3), max_size=2)) + sizes
    return Case((draw(arrays(shape)),), {"sizes": tuple(sizes)})


def _expand_ref(x, sizes):
    offset = len(sizes) - x.ndim
    target = tuple(x.shape[i - offset] if s == -1 else s for i, s in enumerate(sizes))
    return np.broadcast_to(x, target)


@st.composite
def index_case(draw):
    x = draw(arrays(shapes(min_dims=1, max_dims=3)))
    kind = draw(st.sampled_from(["int", "slice", "array", "mask", "mixed"]))
    n = x.shape[0]
    if kind == "int":
        key = draw(st.integers(-n, n - 1))
    elif kind == "slice":
        start, stop = draw(st.integers(-n, n)), draw(st.integers(-n, n))
        key = slice(start, stop, draw(st.sampled_from([1, 2, -1])))
    elif kind == "array":  # repeated indices must accumulate in the gradient
        key = np.array(draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=6)))
    elif kind == "mask":
        key = draw(arrays(x.shape)) > 0
    else:
        key = (np.array(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4))), Ellipsis)
    return Case((x,), {"key": key})


@st.composite
def join_case(draw, same_shape=False):
    base = list(draw(shapes(min_dims=1)))
    dim = draw(st.integers(0, len(base) - 1 + (1 if same_shape else 0)))
    count = draw(st.integers(1, 3))
    items = []
    for _ in range(count):
        shape = list(base)
        if not same_shape:
            shape[dim] = draw(st.integers(1, 3))
        items.append(draw(arrays(tuple(shape))))
    return Case(tuple(items), {"dim": dim if draw(st.booleans()) else dim - len(base) - (1 if same_shape else 0)})


@st.composite
def split_case(draw):
    x = draw(arrays(shapes(min_dims=1)))
    dim = draw(dims_for(x.ndim))
    length = x.shape[dim]
    if draw(st.booleans()):
        return Case((x,), {"split_size_or_sections": draw(st.integers(1, length + 1)), "dim": dim})
    cuts = sorted(draw(st.lists(st.integers(0, length), max_size=3)))
    sizes = [b - a for a, b in zip([0] + cuts, cuts + [length])]
    return Case((x,), {"split_size_or_sections": sizes, "dim": dim})


def _split_ref(x, split_size_or_sections, dim):
    length = x.shape[dim]
    if isinstance(split_size_or_sections, int):
        edges = list(range(split_size_or_sections, length, split_size_or_sections))
    else:
        edges = list(np.cumsum(split_size_or_sections)[:-1])
    return tuple(np.split(x, edges, axis=dim))


@st.composite
def chunk_case(draw):
    x = draw(arrays(shapes(min_dims=1)))
    return Case((x,), {"chunks": draw(st.integers(1, 5)), "dim": draw(dims_for(x.ndim))})


def _chunk_ref(x, chunks, dim):
    step = -(-x.shape[dim] // chunks)
    return tuple(np.split(x, list(range(step, x.shape[dim], step)), axis=dim))


@st.composite
def pad_case(draw):
    x = draw(arrays(shapes(min_dims=1)))
    count = draw(st.integers(1, x.ndim))
    pad = tuple(draw(st.lists(st.integers(0, 2), min_size=2 * count, max_size=2 * count)))
    return Case((x,), {"pad": pad, "value": draw(st.sampled_from([0.0, -1.5]))})


def _pad_ref(x, pad, value):
    widths = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        widths[x.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    return np.pad(x, widths, constant_values=value)


def _squeeze_ref(x, dim):
    if dim is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=dim) if x.shape[dim] == 1 else x


SPECS = [
    OpSpec("reshape", F.reshape, reshape_case(), lambda x, shape: x.reshape(shape)),
    OpSpec("view", F.view, reshape_case(), lambda x, shape: x.reshape(shape)),
    OpSpec("permute", F.permute, permute_case(), lambda x, dims: np.transpose(x, dims)),
    OpSpec("transpose", F.transpose, transpose_case(), lambda x, dim0, dim1: np.swapaxes(x, dim0, dim1)),
    OpSpec("squeeze", F.squeeze, squeeze_case(), _squeeze_ref),
    OpSpec("unsqueeze", F.unsqueeze, unsqueeze_case(), lambda x, dim: np.expand_dims(x, dim)),
    OpSpec("flatten", F.flatten, flatten_case(),
           lambda x, start_dim, end_dim: x.reshape(x.shape[:start_dim] + (-1,) + x.shape[end_dim + 1:])),
    OpSpec("expand", F.expand, expand_case(), _expand_ref),
    OpSpec("index", F.index, index_case(), lambda x, key: x[key]),
    OpSpec("cat", lambda *xs, dim: F.cat(xs, dim), join_case(), lambda *xs, dim: np.concatenate(xs, axis=dim)),
    OpSpec("stack", lambda *xs, dim: F.stack(xs, dim), join_case(same_shape=True),
           lambda *xs, dim: np.stack(xs, axis=dim)),
    OpSpec("split", F.split, split_case(), _split_ref),
    OpSpec("chunk", F.chunk, chunk_case(), _chunk_ref),
    OpSpec("pad", F.pad, pad_case(), _pad_ref),
]
