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


def _compare_spec(name, ref):
    return _binary_spec(name, getattr(F, name), ref, differentiable=(), cases=binary().map(_with_ties))


def _with_ties(case):
    """Make some elements equal, so that == and <= are exercised on ties."""
    if len(case.arrays) == 2:
        a, b = case.arrays
        b = np.where(np.broadcast_to(np.arange(b.size).reshape(b.shape) % 2 == 0, b.shape), np.round(b), b)
        return Case((np.round(a), b))
    return case


@st.composite
def _where_case(draw):
    shape_c, shape_a, shape_b = draw(broadcastable_shapes(3))
    condition = draw(arrays(shape_c)) > 0
    return Case((draw(arrays(shape_a)), draw(arrays(shape_b))), {"condition": condition})


@st.composite
def _clamp_case(draw):
    x = draw(arrays(avoid=(-1.0, 0.5), margin=0.05))
    bounds = draw(st.sampled_from([(-1.0, 0.5), (-1.0, None), (None, 0.5)]))
    return Case((x,), {"min": bounds[0], "max": bounds[1]})


def _logical(name, ref):
    return OpSpec(name, lambda a, b: getattr(F, name)(a > 0, b > 0),
                  binary(scalar=False), lambda a, b: ref(a > 0, b > 0), differentiable=())


SPECS += [
    _compare_spec("eq", np.equal),
    _compare_spec("ne", np.not_equal),
    _compare_spec("lt", np.less),
    _compare_spec("le", np.less_equal),
    _compare_spec("gt", np.greater),
    _compare_spec("ge", np.greater_equal),
    _logical("logical_and", np.logical_and),
    _logical("logical_or", np.logical_or),
    OpSpec("logical_not", lambda a: F.logical_not(a > 0), unary(), lambda a: ~(a > 0), differentiable=()),
    OpSpec("sign", F.sign, unary(), np.sign, differentiable=()),
    OpSpec("where", lambda a, b, condition: F.where(condition, a, b), _where_case(),
           lambda a, b, condition: np.where(condition, a, b)),
    OpSpec("clamp", lambda x, min, max: F.clamp(x, min, max), _clamp_case(),
           lambda x, min, max: np.clip(x, min, max)),
    OpSpec("clone", F.clone, unary(), np.copy),
    OpSpec("cast", lambda x: F.cast(F.cast(x, np.float64), x.dtype), unary(), lambda x: x),
    OpSpec("to_device", lambda x: F.to_device(x, "cpu"), unary(), lambda x: x),
]
