"""Catalogue entries for reductions and broadcasting."""
import numpy as np
from hypothesis import strategies as st

import tinydl.functional as F
from tinydl.testing import Case, OpSpec, arrays, dims_for, shapes


@st.composite
def reduce_case(draw, allow_tuple=True, min_dims=0, distinct=False):
    shape = draw(shapes(min_dims=min_dims))
    if distinct:  # max/min: no ties, so the derivative exists
        values = draw(st.permutations(range(int(np.prod(shape)))))
        x = (np.array(values, dtype=np.float64).reshape(shape) - len(values) / 2) * 0.37
    else:
        x = draw(arrays(shape))
    ndim = x.ndim
    choices = [st.none(), dims_for(ndim)] if ndim else [st.none()]
    if allow_tuple and ndim >= 2:
        choices.append(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple))
    dim = draw(st.one_of(*choices))
    return Case((x,), {"dim": dim, "keepdim": draw(st.booleans())})


def _np_dim(dim):
    return dim if dim is None or isinstance(dim, int) else tuple(dim)


def _var(x, dim, keepdim):
    count = x.size if dim is None else np.prod([x.shape[d] for d in np.atleast_1d(dim)])
    if count < 2:
        return np.full(np.sum(x, axis=_np_dim(dim), keepdims=keepdim).shape, np.inf if count == 1 else np.nan)
    return np.var(x, axis=_np_dim(dim), keepdims=keepdim, ddof=1)


def _extremum_ref(kind):
    def reference(x, dim, keepdim):
        pick = np.max if kind == "max" else np.min
        arg = np.argmax if kind == "max" else np.argmin
        if dim is None:
            return pick(x)
        values = pick(x, axis=dim, keepdims=keepdim)
        indices = arg(x, axis=dim)
        return values, (np.expand_dims(indices, dim) if keepdim else indices)
    return reference


def _extremum_op(kind):
    def op(x, dim, keepdim):
        result = getattr(F, kind)(x, dim, keepdim)
        return result if dim is None else tuple(result)
    return op


def _arg_ref(kind):
    def reference(x, dim, keepdim):
        result = getattr(np, kind)(x, axis=dim, keepdims=keepdim)
        return np.asarray(result)
    return reference


@st.composite
def broadcast_case(draw):
    shape = draw(shapes())
    target = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)).__add__(
        [s if s != 1 else draw(st.integers(1, 3)) for s in shape])
    return Case((draw(arrays(shape)),), {"shape": tuple(target)})


@st.composite
def sum_to_case(draw):
    big = draw(broadcast_case())
    target_shape = big.arrays[0].shape
    return Case((draw(arrays(big.kwargs["shape"])),), {"shape": target_shape})


def _sum_to_ref(x, shape):
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and x.shape[lead + i] != 1)
    return x.sum(axis=axes, keepdims=True).reshape(shape)


SPECS = [
    OpSpec("sum", F.sum, reduce_case(), lambda x, dim, keepdim: np.sum(x, axis=_np_dim(dim), keepdims=keepdim)),
    OpSpec("mean", F.mean, reduce_case(), lambda x, dim, keepdim: np.mean(x, axis=_np_dim(dim), keepdims=keepdim)),
    OpSpec("var", F.var, reduce_case(min_dims=1).filter(
        lambda c: (c.arrays[0].size if c.kwargs["dim"] is None else
                   np.prod([c.arrays[0].shape[d] for d in np.atleast_1d(c.kwargs["dim"])])) >= 2), _var),
    OpSpec("max", _extremum_op("max"), reduce_case(allow_tuple=False, distinct=True), _extremum_ref("max")),
    OpSpec("min", _extremum_op("min"), reduce_case(allow_tuple=False, distinct=True), _extremum_ref("min")),
    OpSpec("logsumexp", F.logsumexp, reduce_case(min_dims=1).filter(lambda c: c.kwargs["dim"] is not None),
           lambda x, dim, keepdim: np.log(np.sum(np.exp(x), axis=_np_dim(dim), keepdims=keepdim))),
    OpSpec("argmax", F.argmax, reduce_case(allow_tuple=False, distinct=True), _arg_ref("argmax"), differentiable=()),
    OpSpec("argmin", F.argmin, reduce_case(allow_tuple=False, distinct=True), _arg_ref("argmin"), differentiable=()),
    OpSpec("broadcast_to", F.broadcast_to, broadcast_case(), lambda x, shape: np.broadcast_to(x, shape)),
    OpSpec("sum_to", F.sum_to, sum_to_case(), _sum_to_ref),
]
