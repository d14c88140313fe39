"""Catalogue entries for elementwise arithmetic and math ops."""
import math

import numpy as np
from hypothesis import strategies as st

import tinydl.functional as F
from tinydl.testing import Case, OpSpec, arrays, broadcastable_shapes


@st.composite
def binary(draw, low=-3.0, high=3.0, avoid_second=(), scalar=True):
    """Two broadcastable arrays, or an array and a Python scalar."""
    shape_a, shape_b = draw(broadcastable_shapes(2))
    a = draw(arrays(shape_a, low=low, high=high))
    if scalar and draw(st.booleans()):
        return Case((a,), {"other": draw(st.floats(0.5, 2.0))})
    return Case((a, draw(arrays(shape_b, low=low, high=high, avoid=avoid_second, margin=0.3))))


def _apart(case, margin=1e-2):
    """No ties between the operands (max/min are not differentiable there)."""
    other = case.arrays[1] if len(case.arrays) > 1 else case.kwargs["other"]
    return bool(np.all(np.abs(np.subtract(case.arrays[0], other)) > margin))


def unary(**kwargs):
    return arrays(**kwargs).map(lambda a: Case((a,)))


def _binary_spec(name, op, ref, **kwargs):
    def call(a, b=None, other=None):
        return op(a, b if b is not None else other)

    def reference(a, b=None, other=None):
        return ref(a, b if b is not None else other)

    return OpSpec(name, call, kwargs.pop("cases", binary()), reference, **kwargs)


SPECS = [
    _binary_spec("add", F.add, np.add),
    _binary_spec("sub", F.sub, np.subtract),
    _binary_spec("mul", F.mul, np.multiply),
    _binary_spec("div", F.div, np.divide, cases=binary(avoid_second=(0.0,))),
    _binary_spec("pow", F.pow, np.power, cases=binary(low=0.5, high=2.0)),
    _binary_spec("maximum", F.maximum, np.maximum, cases=binary().filter(_apart)),
    _binary_spec("minimum", F.minimum, np.minimum, cases=binary().filter(_apart)),
    OpSpec("neg", F.neg, unary(), np.negative),
    OpSpec("exp", F.exp, unary(), np.exp),
    OpSpec("log", F.log, unary(low=0.1, high=5.0), np.log),
    OpSpec("sqrt", F.sqrt, unary(low=0.1, high=5.0), np.sqrt),
    OpSpec("abs", F.abs, unary(avoid=(0.0,)), np.abs),
    OpSpec("erf", F.erf, unary(), np.vectorize(math.erf, otypes=[float])),
]
