"""Scatter-add: ``target[index] += values`` where repeated indices accumulate (the gradient of gathering)."""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module


def index_add(target: Any, index: Any, values: Any) -> None:
    """In place: for every position p of ``index``, ``target[index[p]] += values[p]``, repeats accumulating.

    NumPy's ``add.at`` and CuPy's ``cupyx.scatter_add`` do exactly this; a plain ``target[index] += values``
    would keep only one of the repeated contributions.
    """
    xp = get_array_module(target)
    if xp.__name__ == "numpy":
        xp.add.at(target, index, values)
    else:  # pragma: no cover - needs a GPU
        import cupyx
        cupyx.scatter_add(target, index, values)
