"""Datasets: indexable collections of samples, and views onto them.

A sample is a tuple of arrays (for example ``(image, label)``). A dataset that can gather many samples at once
exposes ``__getitems__(indices)``, returning one batched array per field; the DataLoader then builds a batch with a
single fancy-indexing call instead of a Python loop over samples.
"""
from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backend import get_array_module
from ..tensor import Tensor


class Dataset:
    """Base class: a dataset has a length and returns the sample at an integer index.

    Subclasses implement ``__len__`` and ``__getitem__``; array-backed subclasses also implement
    ``__getitems__(indices) -> tuple of arrays`` (one array per field, first axis over ``indices``).
    """

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")


def check_index(index: Any, length: int, owner: str) -> int:
    """Turn ``index`` into a non-negative int below ``length`` (negative counts from the end), or raise."""
    try:
        position = operator.index(index)
    except TypeError:
        raise TypeError(f"{owner}: index must be an integer, got {type(index).__name__}") from None
    if not -length <= position < length:
        raise IndexError(f"{owner}: index {position} is out of range for a dataset of {length} samples")
    return position % length


def check_indices(indices: Any, length: int, owner: str) -> np.ndarray:
    """Turn a sequence of indices into an int64 array of non-negative positions, or raise."""
    positions = np.asarray(indices)
    if positions.size == 0:
        return positions.astype(np.int64).reshape(0)
    if positions.ndim != 1 or not np.issubdtype(positions.dtype, np.integer):
        raise TypeError(f"{owner}: indices must be a 1-D sequence of integers, "
                        f"got shape {positions.shape} and dtype {positions.dtype}")
    bad = (positions < -length) | (positions >= length)
    if bad.any():
        raise IndexError(f"{owner}: index {int(positions[bad][0])} is out of range "
                         f"for a dataset of {length} samples")
    return positions.astype(np.int64) % max(length, 1)


def default_collate(samples: Sequence[Any]) -> tuple[Any, ...]:
    """Stack a list of samples field by field: ``[(x0, y0), (x1, y1)] -> (stack([x0, x1]), stack([y0, y1]))``.

    A sample that is not a tuple or list counts as a one-field sample; Tensors are unwrapped to their arrays.
    """
    if len(samples) == 0:
        raise ValueError("default_collate: cannot collate an empty list of samples")
    rows = [tuple(s) if isinstance(s, (tuple, list)) else (s,) for s in samples]
    widths = {len(row) for row in rows}
    if len(widths) != 1:
        raise ValueError(f"default_collate: samples have different numbers of fields: {sorted(widths)}")
    fields = []
    for column in zip(*rows):
        values = [v.data if isinstance(v, Tensor) else v for v in column]
        fields.append(get_array_module(values[0]).stack([get_array_module(values[0]).asarray(v) for v in values]))
    return tuple(fields)


def gather(dataset: Any, indices: Sequence[int]) -> tuple[Any, ...]:
    """The samples of ``dataset`` at ``indices`` as one batched array per field.

    Uses the dataset's ``__getitems__`` (one fancy-indexing call) when it has one, else ``default_collate`` over
    ``dataset[i]`` for each index.
    """
    getitems = getattr(dataset, "__getitems__", None)
    if getitems is not None:
        return tuple(getitems(indices))
    return default_collate([dataset[int(i)] for i in indices])


class TensorDataset(Dataset):
    """Samples are the rows of one or more arrays that share their first (sample) axis.

    ``TensorDataset(images, labels)[i] == (images[i], labels[i])``. Tensors are unwrapped to their raw arrays.
    """

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        raw = [a.data if isinstance(a, Tensor) else a for a in arrays]
        for position, array in enumerate(raw):
            if not hasattr(array, "shape") or len(array.shape) == 0:
                raise ValueError(f"TensorDataset: argument {position} must be an array with a sample axis, "
                                 f"got {type(array).__name__} of shape {getattr(array, 'shape', None)}")
        lengths = {array.shape[0] for array in raw}
        if len(lengths) != 1:
            shapes = ", ".join(str(tuple(array.shape)) for array in raw)
            raise ValueError(f"TensorDataset: all arrays must have the same first dimension, got shapes {shapes}")
        self.arrays: tuple[Any, ...] = tuple(raw)

    def __len__(self) -> int:
        return int(self.arrays[0].shape[0])

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        position = check_index(index, len(self), "TensorDataset")
        return tuple(array[position] for array in self.arrays)

    def __getitems__(self, indices: Sequence[int]) -> tuple[Any, ...]:
        positions = check_indices(indices, len(self), "TensorDataset")
        return tuple(array[get_array_module(array).asarray(positions)] for array in self.arrays)


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = check_indices(indices, len(dataset), "Subset")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[check_index(index, len(self), "Subset")])]

    def __getitems__(self, indices: Sequence[int]) -> tuple[Any, ...]:
        return gather(self.dataset, self.indices[check_indices(indices, len(self), "Subset")])


def _split_lengths(lengths: Sequence[int | float], total: int) -> list[int]:
    """Integer split sizes: ``lengths`` as given when they are ints, or fractions of ``total`` (summing to 1),
    with the remainder of the rounding handed out one sample at a time from the first split on."""
    if all(isinstance(n, (int, np.integer)) for n in lengths):
        sizes = [int(n) for n in lengths]
        if any(n < 0 for n in sizes) or sum(sizes) != total:
            raise ValueError(f"random_split: lengths {sizes} must be non-negative and sum to the dataset "
                             f"length {total}")
        return sizes
    fractions = [float(f) for f in lengths]
    if any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-9):
        raise ValueError(f"random_split: fractions {fractions} must be non-negative and sum to 1")
    sizes = [int(math.floor(total * f)) for f in fractions]
    for position in range(total - sum(sizes)):
        sizes[position % len(sizes)] += 1
    return sizes


def random_split(dataset: Dataset, lengths: Sequence[int | float], seed: int) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random subsets of the given lengths (or fractions).

    The same ``seed`` always gives the same split.
    """
    sizes = _split_lengths(lengths, len(dataset))
    order = np.random.default_rng(seed).permutation(len(dataset))
    bounds = np.cumsum([0] + sizes)
    return [Subset(dataset, order[start:stop]) for start, stop in zip(bounds[:-1], bounds[1:])]
