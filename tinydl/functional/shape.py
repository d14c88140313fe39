"""Shape ops: they move or select elements without arithmetic, so each derivative moves the gradient back."""
from __future__ import annotations

import math
from typing import Any, Sequence

from ..autograd import Function
from ..backend import get_array_module
from ..costs import moves_only
from ..kernels.scatter import index_add
from ..tensor import Tensor
from ._operands import operands
from ._dims import normalize_dim
from .reduction import broadcast_to

__all__ = ["reshape", "view", "transpose", "permute", "squeeze", "unsqueeze", "flatten", "expand", "index", "cat",
           "stack", "split", "chunk", "pad"]


class Reshape(Function):
    """y = x with a new shape (same elements, row-major order);  dx = gy reshaped back."""

    saved_inputs, saves_outputs = (), False
    returns_view = True
    flops = moves_only

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def forward(self, x):
        self.input_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return reshape(gy, self.input_shape)


class Permute(Function):
    """y = x with its axes reordered (y.shape[i] = x.shape[dims[i]]);  dx = gy with the inverse order."""

    saved_inputs, saves_outputs = (), False
    returns_view = True
    flops = moves_only

    def __init__(self, dims: tuple[int, ...]):
        self.dims = dims

    def forward(self, x):
        return x.transpose(self.dims)

    def backward(self, gy):
        inverse = [0] * len(self.dims)
        for position, axis in enumerate(self.dims):
            inverse[axis] = position
        return permute(gy, tuple(inverse))


class Index(Function):
    """y = x[key] (slices, integers, integer or boolean arrays);  dx = zeros with gy added at the selected places
    (repeated integer indices accumulate)."""

    saved_inputs, saves_outputs = (), False
    returns_view = True
    flops = moves_only

    def __init__(self, key: Any):
        self.key = key

    def forward(self, x):
        self.input_shape = x.shape
        return x[self.key]

    def backward(self, gy):
        return IndexAdd(self.key, self.input_shape)(gy)


class IndexAdd(Function):
    """y = zeros(shape) with g added at x[key];  dg = gy[key] (the derivative of a scatter is a gather)."""

    saved_inputs, saves_outputs = (), False

    name = "index_backward"

    def flops(self, inputs, outputs):
        """One addition per scattered element."""
        return inputs[0].size

    def __init__(self, key: Any, shape: tuple[int, ...]):
        self.key, self.shape = key, shape

    def forward(self, g):
        xp = get_array_module(g)
        result = xp.zeros(self.shape, dtype=g.dtype)
        if _is_basic(self.key):
            result[self.key] = g
        else:
            index_add(result, self.key, g)
        return result

    def backward(self, gy):
        return index(gy, self.key)


def _is_basic(key: Any) -> bool:
    """True when ``key`` holds only ints, slices, None and Ellipsis (no element can be selected twice)."""
    parts = key if isinstance(key, tuple) else (key,)
    return all(part is None or part is Ellipsis or isinstance(part, (int, slice)) for part in parts)


class Concatenate(Function):
    """y = the inputs joined along ``dim``;  d(input k) = the slice of gy that came from input k."""

    saved_inputs, saves_outputs = (), False

    name = "cat"
    flops = moves_only

    def __init__(self, dim: int):
        self.dim = dim

    def forward(self, *xs):
        self.bounds = [0]
        for x in xs:
            self.bounds.append(self.bounds[-1] + x.shape[self.dim])
        # into a C-contiguous array: concatenate would otherwise copy the inputs' axis order, and a cat of
        # transposed views (the head gradients of attention) would come out transposed, so that the reshape
        # after it copies everything a second time
        xp = get_array_module(xs[0])
        shape = xs[0].shape[:self.dim] + (self.bounds[-1],) + xs[0].shape[self.dim + 1:]
        return xp.concatenate(xs, axis=self.dim, out=xp.empty(shape, dtype=xp.result_type(*xs)))

    def backward(self, gy):
        lead = (slice(None),) * self.dim
        return tuple(gy[lead + (slice(start, stop),)] for start, stop in zip(self.bounds, self.bounds[1:]))


class Stack(Function):
    """y = the inputs stacked along a new axis ``dim``;  d(input k) = gy[..., k, ...] along that axis."""

    saved_inputs, saves_outputs = (), False
    flops = moves_only

    def __init__(self, dim: int):
        self.dim = dim

    def forward(self, *xs):
        return get_array_module(xs[0]).stack(xs, axis=self.dim)

    def backward(self, gy):
        lead = (slice(None),) * self.dim
        return tuple(gy[lead + (k,)] for k in range(len(self.inputs)))


class Split(Function):
    """(y_1, ..., y_n) = consecutive pieces of x along ``dim``;  dx = the pieces' gradients joined back."""

    saved_inputs, saves_outputs = (), False
    returns_view = True
    flops = moves_only

    def __init__(self, sizes: list[int], dim: int):
        self.sizes, self.dim = sizes, dim

    def forward(self, x):
        lead = (slice(None),) * self.dim
        pieces, start = [], 0
        for size in self.sizes:
            pieces.append(x[lead + (slice(start, start + size),)])
            start += size
        return tuple(pieces)

    def backward(self, *gys):
        return cat(list(gys), self.dim)


class Pad(Function):
    """y = x surrounded by ``value`` (constant padding);  dx = the interior slice of gy."""

    saved_inputs, saves_outputs = (), False
    flops = moves_only

    def __init__(self, widths: list[tuple[int, int]], value: float):
        self.widths, self.value = widths, value

    def forward(self, x):
        xp = get_array_module(x)
        return xp.pad(x, self.widths, mode="constant", constant_values=self.value)

    def backward(self, gy):
        return gy[tuple(slice(before, gy.shape[axis] - after) for axis, (before, after) in enumerate(self.widths))]


# ------------------------------------------------------------------------------------------ public functions
def _resolve_shape(op: str, input: Tensor, shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    unknown = [i for i, s in enumerate(shape) if s == -1]
    known = math.prod(s for s in shape if s != -1)
    if len(unknown) > 1 or any(s < -1 for s in shape):
        raise ValueError(f"{op}: invalid shape {shape} (at most one -1, no other negative sizes)")
    if unknown:
        if known == 0 or input.size % known:
            raise ValueError(f"{op}: shape {shape} is invalid for input of shape {tuple(input.shape)} "
                             f"({input.size} elements)")
        shape = shape[:unknown[0]] + (input.size // known,) + shape[unknown[0] + 1:]
    elif known != input.size:
        raise ValueError(f"{op}: shape {shape} is invalid for input of shape {tuple(input.shape)} "
                         f"({input.size} elements)")
    return shape


def reshape(input: Tensor, shape: Sequence[int]) -> Tensor:
    """The same elements in row-major order, in a new shape (one size may be -1)."""
    shape = _resolve_shape("reshape", input, shape)
    return input if shape == input.shape else Reshape(shape)(input)


def view(input: Tensor, shape: Sequence[int]) -> Tensor:
    """Alias of :func:`reshape` (tinydl has no separate notion of views)."""
    shape = _resolve_shape("view", input, shape)
    return input if shape == input.shape else Reshape(shape)(input)


def permute(input: Tensor, dims: Sequence[int]) -> Tensor:
    """Reorder the axes: ``y.shape[i] == x.shape[dims[i]]``."""
    dims = tuple(normalize_dim("permute", d, input.ndim) for d in dims)
    if sorted(dims) != list(range(input.ndim)):
        raise ValueError(f"permute: dims {dims} are not a permutation of the {input.ndim} axes of a tensor of "
                         f"shape {tuple(input.shape)}")
    return Permute(dims)(input)


def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two axes."""
    dims = list(range(input.ndim))
    a, b = normalize_dim("transpose", dim0, input.ndim), normalize_dim("transpose", dim1, input.ndim)
    dims[a], dims[b] = dims[b], dims[a]
    return Permute(tuple(dims))(input)


def squeeze(input: Tensor, dim: Any = None) -> Tensor:
    """Remove axes of size 1 (all of them, or those in ``dim`` that have size 1, as in PyTorch)."""
    if dim is None:
        dims = {i for i, size in enumerate(input.shape) if size == 1}
    else:
        dims = {normalize_dim("squeeze", d, input.ndim) for d in ((dim,) if isinstance(dim, int) else dim)}
        dims = {d for d in dims if input.shape[d] == 1}
    return reshape(input, tuple(size for i, size in enumerate(input.shape) if i not in dims))


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    """Insert an axis of size 1 at position ``dim`` (negative counts from the end of the result)."""
    dim = normalize_dim("unsqueeze", dim, input.ndim + 1)
    return reshape(input, input.shape[:dim] + (1,) + input.shape[dim:])


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge the axes start_dim..end_dim (inclusive) into one."""
    if input.ndim == 0:
        return reshape(input, (1,))
    start, end = normalize_dim("flatten", start_dim, input.ndim), normalize_dim("flatten", end_dim, input.ndim)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    merged = math.prod(input.shape[start:end + 1])
    return reshape(input, input.shape[:start] + (merged,) + input.shape[end + 1:])


def expand(input: Tensor, sizes: Sequence[int]) -> Tensor:
    """Broadcast to ``sizes`` without copying; -1 keeps a dimension's size; new dimensions go in front."""
    sizes = tuple(sizes)
    if len(sizes) < input.ndim:
        raise ValueError(f"expand: the number of sizes {len(sizes)} is smaller than the tensor's dimensions "
                         f"{input.ndim} (shape {tuple(input.shape)})")
    offset = len(sizes) - input.ndim
    target = tuple(input.shape[i - offset] if size == -1 and i >= offset else size for i, size in enumerate(sizes))
    for axis, size in enumerate(input.shape):
        if size != 1 and target[axis + offset] != size:
            raise ValueError(f"expand: cannot expand shape {tuple(input.shape)} to {sizes}: dimension {axis} has "
                             f"size {size}")
    return broadcast_to(input, target)


def _raw_key(key: Any) -> Any:
    """Replace Tensors inside an indexing key by their arrays."""
    if isinstance(key, Tensor):
        return key.data
    if isinstance(key, tuple):
        return tuple(part.data if isinstance(part, Tensor) else part for part in key)
    if isinstance(key, list):
        return get_array_module(*key).asarray(key) if key and not isinstance(key[0], slice) else key
    return key


def index(input: Tensor, key: Any) -> Tensor:
    """``input[key]`` with NumPy semantics (basic and advanced indexing); differentiable."""
    key = _raw_key(key)
    try:
        return Index(key)(input)
    except IndexError as error:
        raise IndexError(f"index: {error} (tensor of shape {tuple(input.shape)})") from error


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along an existing axis; all other sizes must match."""
    if len(tensors) == 0:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    tensors = operands("cat", *tensors) if len(tensors) > 1 else list(tensors)
    dim = normalize_dim("cat", dim, tensors[0].ndim)
    for k, t in enumerate(tensors):
        if t.ndim != tensors[0].ndim or t.shape[:dim] + t.shape[dim + 1:] != tensors[0].shape[:dim] + \
                tensors[0].shape[dim + 1:]:
            raise ValueError(f"cat: sizes must match except in dimension {dim}, but tensor 0 has shape "
                             f"{tuple(tensors[0].shape)} and tensor {k} has shape {tuple(t.shape)}")
    return Concatenate(dim)(*tensors)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join equally shaped tensors along a new axis ``dim``."""
    if len(tensors) == 0:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    tensors = operands("stack", *tensors) if len(tensors) > 1 else list(tensors)
    for k, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: expects each tensor to be of equal shape, but tensor 0 has shape "
                             f"{tuple(tensors[0].shape)} and tensor {k} has shape {tuple(t.shape)}")
    return Stack(normalize_dim("stack", dim, tensors[0].ndim + 1))(*tensors)


def split(input: Tensor, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """Pieces along ``dim``: of ``split_size`` each (the last may be smaller), or of the listed sizes."""
    dim = normalize_dim("split", dim, input.ndim)
    length = input.shape[dim]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [min(step, length - start) for start in range(0, length, step)] or [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != length or any(s < 0 for s in sizes):
            raise ValueError(f"split: sections {sizes} do not add up to the size {length} of dimension {dim} "
                             f"(shape {tuple(input.shape)})")
    result = Split(sizes, dim)(input)
    return result if isinstance(result, tuple) else (result,)


def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """Split into ``chunks`` pieces of ceil(size / chunks) along ``dim`` (fewer if the size runs out)."""
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    length = input.shape[normalize_dim("chunk", dim, input.ndim)]
    return split(input, max(1, -(-length // chunks)), dim)


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad with a constant, PyTorch style: ``pad = (left, right)`` for the last axis, then
    ``(left, right, top, bottom)`` for the last two, and so on."""
    if mode != "constant":
        raise NotImplementedError(f"pad: only mode='constant' is implemented, got mode={mode!r}")
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim or any(p < 0 for p in pad):
        raise ValueError(f"pad: expected an even number of non-negative widths for at most {input.ndim} axes "
                         f"(tensor of shape {tuple(input.shape)}), got {pad}")
    widths = [(0, 0)] * input.ndim
    for k in range(len(pad) // 2):
        widths[input.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    return Pad(widths, value)(input)
