"""Random draws whose form differs between NumPy and CuPy."""
from __future__ import annotations

from typing import Any


def random_permutation(generator: Any, n: int) -> Any:
    """A uniformly random permutation of 0..n-1 (int64) from ``generator``.

    NumPy's Generator has ``permutation``; CuPy's has not, so there the permutation is the order that sorts n
    uniform keys (every order equally likely; ties among 2^53 float64 values are negligible).
    """
    if hasattr(generator, "permutation"):
        return generator.permutation(n).astype("int64", copy=False)
    return generator.random(n).argsort().astype("int64", copy=False)
