"""Validating dimension arguments (``dim=-1``, ``dim=(0, 2)``) with errors that name the op."""
from __future__ import annotations

from typing import Any


def normalize_dim(op: str, dim: int, ndim: int) -> int:
    """A dimension index in [0, ndim), accepting negative ones; an error naming the op when out of range."""
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise IndexError(f"{op}: dimension {dim} is out of range for a tensor of {ndim} dimensions")
    return dim % max(ndim, 1)


def normalize_dims(op: str, dim: Any, ndim: int) -> tuple[int, ...]:
    """``None`` (all dimensions), an int or a sequence of ints, as a sorted tuple of non-negative indices."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    result = tuple(sorted({normalize_dim(op, d, ndim) for d in dims}))
    if len(result) != len(dims):
        raise ValueError(f"{op}: dimension listed twice in {dim}")
    return result
