"""Catalogue entries for matrix products."""
import numpy as np
from hypothesis import strategies as st

import tinydl.functional as F
from tinydl.testing import Case, OpSpec, arrays


@st.composite
def matmul_case(draw):
    """Every PyTorch matmul form: vector-vector, matrix-vector, vector-matrix, and batched with broadcasting."""
    n, k, m = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    form = draw(st.sampled_from(["1x1", "2x1", "1x2", "2x2", "batched", "broadcast", "1xbatched"]))
    batch = (draw(st.integers(1, 3)),)
    shapes = {
        "1x1": ((k,), (k,)), "2x1": ((n, k), (k,)), "1x2": ((k,), (k, m)), "2x2": ((n, k), (k, m)),
        "batched": (batch + (n, k), batch + (k, m)), "broadcast": ((2, 1, n, k), batch + (k, m)),
        "1xbatched": ((k,), batch + (k, m)),
    }[form]
    return Case(tuple(draw(arrays(shape)) for shape in shapes))


@st.composite
def linear_case(draw):
    lead = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    n_in, n_out = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    x, w = draw(arrays(lead + (n_in,))), draw(arrays((n_out, n_in)))
    if draw(st.booleans()):
        return Case((x, w, draw(arrays((n_out,)))))
    return Case((x, w))


SPECS = [
    OpSpec("matmul", F.matmul, matmul_case(), np.matmul),
    OpSpec("linear", F.linear, linear_case(), lambda x, w, b=None: x @ w.T + (0 if b is None else b)),
]
