"""Catalogue entries for activations and (log-)softmax."""
import math

import numpy as np
from hypothesis import strategies as st

import tinydl.functional as F
from tinydl.testing import Case, OpSpec, arrays, dims_for, shapes

_erf = np.vectorize(math.erf, otypes=[float])


def unary(**kwargs):
    return arrays(**kwargs).map(lambda a: Case((a,)))


@st.composite
def along_dim(draw, low=-3.0, high=3.0):
    x = draw(arrays(shapes(min_dims=1), low=low, high=high))
    return Case((x,), {"dim": draw(dims_for(x.ndim))})


def _softmax(x, dim):
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


SPECS = [
    OpSpec("tanh", F.tanh, unary(), np.tanh),
    OpSpec("sigmoid", F.sigmoid, unary(low=-30, high=30), lambda x: 1 / (1 + np.exp(-x))),
    OpSpec("relu", F.relu, unary(avoid=(0.0,)), lambda x: np.maximum(x, 0)),
    OpSpec("leaky_relu", lambda x, negative_slope: F.leaky_relu(x, negative_slope),
           arrays(avoid=(0.0,)).flatmap(lambda x: st.floats(0.0, 0.5).map(lambda s: Case((x,), {"negative_slope": s}))),
           lambda x, negative_slope: np.where(x > 0, x, negative_slope * x)),
    OpSpec("gelu", F.gelu, unary(), lambda x: x * 0.5 * (1 + _erf(x / math.sqrt(2)))),
    OpSpec("gelu", lambda x: F.gelu(x, approximate="tanh"), unary(),
           lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
    OpSpec("silu", F.silu, unary(low=-10, high=10), lambda x: x / (1 + np.exp(-x))),
    OpSpec("softmax", F.softmax, along_dim(), _softmax),
    OpSpec("softmax", F.softmax, along_dim(low=-1e4, high=1e4), _softmax, twice_differentiable=False,
           differentiable=()),
    OpSpec("log_softmax", F.log_softmax, along_dim(), lambda x, dim: np.log(_softmax(x, dim))),
    OpSpec("log_softmax", F.log_softmax, along_dim(low=-1e4, high=1e4),
           lambda x, dim: x - x.max(axis=dim, keepdims=True) - np.log(
               np.exp(x - x.max(axis=dim, keepdims=True)).sum(axis=dim, keepdims=True)), differentiable=()),
]
