"""Catalogue entry for embedding: ids of any shape (repeats likely); reference: row by row.

padding_idx deliberately withholds a gradient that the maths has, so here it only names a row no id looks up
(then the gradient is the true one); its effect is tested in tests/functional/test_embedding.py."""
import numpy as np
from hypothesis import strategies as st

import tinydl.functional as F
from tinydl.testing import Case, OpSpec, arrays, shapes


@st.composite
def embedding_case(draw):
    size, width = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    id_shape = draw(shapes(min_dims=0, max_dims=2))
    ids = np.array(draw(st.lists(st.integers(0, size - 1), min_size=int(np.prod(id_shape)),
                                 max_size=int(np.prod(id_shape)))), dtype=np.int64).reshape(id_shape)
    unused = sorted(set(range(size)) - set(ids.reshape(-1).tolist()))
    padding_idx = draw(st.one_of(st.none(), st.sampled_from(unused))) if unused else None
    return Case((ids, draw(arrays((size, width)))), {"padding_idx": padding_idx})


def embedding_reference(ids, weight, padding_idx=None):
    rows = [weight[i] for i in ids.reshape(-1)]
    return np.array(rows).reshape(ids.shape + weight.shape[1:])


SPECS = [
    OpSpec("embedding", F.embedding, embedding_case(), embedding_reference, differentiable=[1], max_examples=12),
]
