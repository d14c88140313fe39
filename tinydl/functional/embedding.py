"""Embedding lookup: rows of a table gathered by integer ids, and the scatter-sum that is its gradient."""
from __future__ import annotations

from typing import Any

from ..autograd import Function
from ..backend import get_array_module
from ..costs import moves_only
from ..kernels.scatter import index_add
from ..tensor import Tensor
from ._checks import check_values_now
from ._operands import to_tensor
from .elementwise import constant

__all__ = ["embedding"]


class Embedding(Function):
    """y[p] = W[ids[p]] for every position p of ``ids``;  dW[k] = sum of gy[p] over the positions with
    ids[p] == k (repeats accumulate), and dW[padding_idx] = 0."""

    saved_inputs, saves_outputs = (), False
    flops = moves_only

    def __init__(self, ids: Any, padding_idx: int | None):
        self.ids, self.padding_idx = ids, padding_idx

    def forward(self, weight):
        return get_array_module(weight).take(weight, self.ids, axis=0)

    def backward(self, gy):
        return EmbeddingBackward(self.ids, self.padding_idx, self.inputs[0].shape[0])(gy)


class EmbeddingBackward(Function):
    """dW = the rows of gy summed into a zero table by id, its padding row left at zero.

    It is linear in gy, and its derivative is a gather again: for an upstream V of the table's shape,
    d<V, dW>/d(gy) = V'[ids], where V' is V with its padding row zeroed.
    """

    saved_inputs, saves_outputs = (), False

    name = "embedding_backward"

    def flops(self, inputs, outputs):
        """One addition per gradient element."""
        return inputs[0].size

    def __init__(self, ids: Any, padding_idx: int | None, num_embeddings: int):
        self.ids, self.padding_idx, self.num_embeddings = ids, padding_idx, num_embeddings

    def forward(self, gy):
        grad = accumulate_rows(self.ids.reshape(-1), gy.reshape(-1, gy.shape[-1]), self.num_embeddings)
        if self.padding_idx is not None:
            grad[self.padding_idx] = 0
        return grad

    def backward(self, v):
        if self.padding_idx is not None:
            xp = get_array_module(v)
            keep = xp.ones((self.num_embeddings, 1), dtype=v.dtype)
            keep[self.padding_idx] = 0
            v = v * constant(keep)
        return Embedding(self.ids, None)(v)


def accumulate_rows(ids: Any, rows: Any, num_rows: int) -> Any:
    """table[k] = sum of rows[p] over the p with ids[p] == k, for a (num_rows, D) table.

    The scatter-add runs on the flattened table, element (p, j) going to position ids[p] * D + j: NumPy's
    ``add.at`` has a fast path for one-dimensional targets, measured 2.5-4x faster than adding whole rows (and
    faster than bincount or sort-and-reduceat) for 3200 ids of width 128 into tables of 65 and 10000 rows.
    """
    xp = get_array_module(rows)
    width = rows.shape[1]
    table = xp.zeros((num_rows, width), dtype=rows.dtype)
    positions = (ids.reshape(-1, 1) * width + xp.arange(width)).reshape(-1)
    index_add(table.reshape(-1), positions, rows.reshape(-1))
    return table


def embedding(input: Any, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` (num_embeddings, D) gathered by the integer ids in ``input``: output shape
    input.shape + (D,). Rows at ``padding_idx`` are looked up as usual but receive no gradient."""
    op = "embedding"
    ids = to_tensor(input)
    if not isinstance(weight, Tensor):
        raise TypeError(f"{op}: weight must be a Tensor, got {type(weight).__name__}")
    if weight.ndim != 2:
        raise ValueError(f"{op}: weight must be a 2-D table (num_embeddings, embedding_dim), got shape "
                         f"{tuple(weight.shape)}")
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{op}: ids must have an integer dtype (int64), got {ids.dtype}")
    if ids.device != weight.device:
        raise RuntimeError(f"{op}: ids are on {ids.device} but the weight is on {weight.device}")
    size = weight.shape[0]
    if padding_idx is not None:
        if not -size <= padding_idx < size:
            raise ValueError(f"{op}: padding_idx {padding_idx} is outside the table of {size} embeddings")
        padding_idx %= size
    _check_ids(op, ids.data, size)
    return Embedding(ids.data, padding_idx)(weight)


def _check_ids(op: str, ids: Any, size: int) -> None:
    """Every id in [0, size); on a GPU only under detect_anomaly (see :mod:`._checks`)."""
    if ids.size == 0 or not check_values_now(ids):
        return
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= size:
        bad = low if low < 0 else high
        raise IndexError(f"{op}: id {bad} is out of range for a table of {size} embeddings (valid ids are "
                         f"0..{size - 1})")
