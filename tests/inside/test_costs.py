"""FLOP formulas: every op of the catalogue declares one (forward and, through the Functions its backward calls,
backward), and the formulas agree with naive reference implementations that count their own arithmetic."""
import importlib
import itertools
import math
import pkgutil

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import tinydl
import tinydl.functional as F
from tinydl import costs, events
from tinydl.autograd import Function

from catalogue import all_specs


class FlopRecorder:
    """Collects (op, phase, class, declared FLOPs) for every call."""

    wants_site = False

    def __init__(self):
        self.calls = []

    def begin(self, event):
        pass

    def end(self, event):
        if event.phase == "forward" or event.parent is not None:
            flops = costs.forward_flops(event.function, event.inputs, event.outputs)
            self.calls.append((event.op, event.phase, type(event.function), flops))


def all_function_classes():
    """Every Function subclass of tinydl, after importing every module of the package (an optional extra that
    is not installed leaves its modules out)."""
    for module in pkgutil.walk_packages(tinydl.__path__, "tinydl."):
        try:
            importlib.import_module(module.name)
        except ImportError:
            pass
    pending, seen = list(Function.__subclasses__()), []
    while pending:
        cls = pending.pop()
        seen.append(cls)
        pending.extend(cls.__subclasses__())
    return [c for c in seen if c.__module__.startswith("tinydl.") and c.forward is not Function.forward]  # not bases


def test_every_function_of_tinydl_declares_a_flop_formula():
    missing = sorted(f"{c.__module__}.{c.__qualname__}" for c in all_function_classes()
                     if getattr(c, "flops", None) is None)
    assert not missing, f"Functions without a FLOP formula (they would show as 'not counted'): {missing}"


SPECS = all_specs()


@pytest.mark.parametrize("spec", SPECS, ids=[f"{s.name}-{i}" for i, s in enumerate(SPECS)])
def test_every_catalogue_entry_has_formulas_forward_and_backward(spec):
    drawn = []

    @settings(max_examples=1, database=None, deadline=None, phases=[Phase.generate])
    @given(case=spec.cases)
    def draw(case):
        drawn.append(case)

    draw()
    case = drawn[0]
    recorder = FlopRecorder()
    tensors = [tinydl.tensor(a, requires_grad=np.asarray(a).dtype.kind == "f") for a in case.arrays]
    with events.subscribed(recorder):
        out = spec.op(*tensors, **case.kwargs)
        outs = [o for o in (out if isinstance(out, (tuple, list)) else (out,)) if o.requires_grad]
        if outs:
            total = sum((o * o).sum() for o in outs)
            tinydl.autograd.grad([total], [t for t in tensors if t.requires_grad], allow_unused=True,
                                 create_graph=spec.twice_differentiable)
    uncounted = sorted({f"{op} ({phase})" for op, phase, _, flops in recorder.calls if flops is None})
    assert recorder.calls or not outs  # comparisons and argmax build no node: nothing to count
    assert not uncounted, f"{spec.name}: ops without a FLOP formula: {uncounted}"


# ---------------------------------------------------------------------------------- counting references
class Counted(float):
    """A float that counts the arithmetic done with it (one per +, -, *, /, comparison)."""

    count = 0

    def _op(self, result):
        Counted.count += 1
        return Counted(result)

    def __add__(self, other):
        return self._op(float(self) + float(other))

    __radd__ = __add__

    def __mul__(self, other):
        return self._op(float(self) * float(other))

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self._op(float(self) / float(other))

    def __gt__(self, other):
        Counted.count += 1
        return float(self) > float(other)


def counting(function, *args):
    Counted.count = 0
    function(*args)
    return Counted.count


def declared(run, op_name):
    """Sum of the declared FLOPs of every call of ``op_name`` made by ``run()``."""
    recorder = FlopRecorder()
    with events.subscribed(recorder):
        run()
    return sum(flops for op, _, _, flops in recorder.calls if op == op_name)


def naive_matmul(a, b):
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a, b = np.broadcast_to(a, batch + a.shape[-2:]), np.broadcast_to(b, batch + b.shape[-2:])
    for index in itertools.product(*map(range, batch)):
        for i, j in itertools.product(range(a.shape[-2]), range(b.shape[-1])):
            total = Counted(0)
            for k in range(a.shape[-1]):
                total = total + Counted(a[index + (i, k)]) * b[index + (k, j)]


def naive_linear(x, w, b):
    for row in x.reshape(-1, x.shape[-1]):
        for o in range(w.shape[0]):
            total = Counted(0)
            for i in range(w.shape[1]):
                total = total + Counted(row[i]) * w[o, i]
            if b is not None:
                total = total + b[o]


small = st.integers(1, 3)


@settings(max_examples=15, deadline=None)
@given(st.tuples(small, small, small), st.sampled_from([(), (2,), (2, 1)]), st.sampled_from([(), (1,), (2,)]))
def test_matmul_formula_is_2mnk(mkn, batch_a, batch_b):
    m, k, n = mkn
    a, b = np.ones(batch_a + (m, k)), np.ones(batch_b + (k, n))
    out_batch = np.broadcast_shapes(batch_a, batch_b)
    assert declared(lambda: F.matmul(tinydl.tensor(a), tinydl.tensor(b)), "matmul") \
        == counting(naive_matmul, a, b) == 2 * math.prod(out_batch) * m * n * k


@settings(max_examples=10, deadline=None)
@given(small, small, small, st.booleans())
def test_linear_formula(rows, n_in, n_out, bias):
    x, w, b = np.ones((rows, n_in)), np.ones((n_out, n_in)), np.ones(n_out) if bias else None
    args = [tinydl.tensor(x), tinydl.tensor(w)] + ([tinydl.tensor(b)] if bias else [])
    assert declared(lambda: F.linear(*args), "linear") == counting(naive_linear, x, w, b)


@st.composite
def conv_setups(draw):
    groups = draw(st.integers(1, 2))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, padding, dilation = draw(st.integers(1, 2)), draw(st.integers(0, 1)), draw(st.integers(1, 2))
    h = draw(st.integers(dilation * (kh - 1) + 1, 5))
    w = draw(st.integers(dilation * (kw - 1) + 1, 5))
    return dict(n=draw(st.integers(1, 2)), cin=cin, cout=cout, h=h, w=w, kh=kh, kw=kw, groups=groups,
                stride=stride, padding=padding, dilation=dilation, bias=draw(st.booleans()))


def naive_conv(x, weight, bias, stride, dilation, groups, out_hw):
    """x already padded; every product of the window, padding included, as im2col computes it."""
    n, cin = x.shape[:2]
    cout, cg, kh, kw = weight.shape
    for b, o, i, j in itertools.product(range(n), range(cout), *map(range, out_hw)):
        total = Counted(0)
        g = o // (cout // groups)
        for c, p, q in itertools.product(range(cg), range(kh), range(kw)):
            total = total + Counted(x[b, g * cg + c, i * stride + p * dilation, j * stride + q * dilation]) \
                * weight[o, c, p, q]
        if bias is not None:
            total = total + bias[o]


def naive_conv_input_grad(gy, weight, padded_shape, stride, dilation, groups):
    gx = np.full(padded_shape, Counted(0), dtype=object)
    cout, cg, kh, kw = weight.shape
    for b, o, i, j in itertools.product(*map(range, gy.shape)):
        g = o // (cout // groups)
        for c, p, q in itertools.product(range(cg), range(kh), range(kw)):
            place = (b, g * cg + c, i * stride + p * dilation, j * stride + q * dilation)
            gx[place] = gx[place] + Counted(gy[b, o, i, j]) * weight[o, c, p, q]


def naive_conv_weight_grad(x, gy, weight_shape, stride, dilation, groups):
    cout, cg, kh, kw = weight_shape
    for o, c, p, q in itertools.product(range(cout), range(cg), range(kh), range(kw)):
        g = o // (cout // groups)
        total = Counted(0)
        for b, i, j in itertools.product(range(gy.shape[0]), *map(range, gy.shape[2:])):
            total = total + Counted(x[b, g * cg + c, i * stride + p * dilation, j * stride + q * dilation]) \
                * gy[b, o, i, j]


@settings(max_examples=12, deadline=None)
@given(conv_setups())
def test_conv2d_formulas_forward_and_both_gradients(s):
    x = np.ones((s["n"], s["cin"], s["h"], s["w"]))
    weight = np.ones((s["cout"], s["cin"] // s["groups"], s["kh"], s["kw"]))
    bias = np.ones(s["cout"]) if s["bias"] else None
    tx, tw = tinydl.tensor(x, requires_grad=True), tinydl.tensor(weight, requires_grad=True)
    args = [tx, tw] + ([tinydl.tensor(bias, requires_grad=True)] if bias is not None else [])
    kwargs = dict(stride=s["stride"], padding=s["padding"], dilation=s["dilation"], groups=s["groups"])
    recorder = FlopRecorder()
    with events.subscribed(recorder):
        y = F.conv2d(*args, **kwargs)
        y.sum().backward()
    flops = {op: f for op, _, _, f in recorder.calls}
    padded = np.pad(x, ((0, 0), (0, 0), (s["padding"],) * 2, (s["padding"],) * 2))
    geometry = (s["stride"], s["dilation"], s["groups"])
    out_hw = y.shape[2:]
    assert flops["conv2d"] == counting(naive_conv, padded, weight, bias, *geometry, out_hw) \
        == 2 * s["n"] * s["cout"] * math.prod(out_hw) * s["cin"] // s["groups"] * s["kh"] * s["kw"] \
        + (math.prod(y.shape) if bias is not None else 0)
    gy = np.ones(y.shape)
    assert flops["conv2d_input_grad"] == counting(naive_conv_input_grad, gy, weight, padded.shape, *geometry)
    assert flops["conv2d_weight_grad"] == counting(naive_conv_weight_grad, padded, gy, weight.shape, *geometry)


def naive_pool(x, kernel, stride, kind):
    n, c, h, w = x.shape
    for b, ch in itertools.product(range(n), range(c)):
        for i, j in itertools.product(range((h - kernel) // stride + 1), range((w - kernel) // stride + 1)):
            best, total = Counted(-math.inf), Counted(0)
            for p, q in itertools.product(range(kernel), range(kernel)):
                value = Counted(x[b, ch, i * stride + p, j * stride + q])
                if kind == "max":
                    best = value if value > best else best
                else:
                    total = total + value
            if kind == "avg":
                total / (kernel * kernel)


@settings(max_examples=10, deadline=None)
@given(small, small, st.integers(1, 3), st.integers(1, 2), st.sampled_from(["max", "avg"]))
def test_pooling_formulas(n, c, kernel, stride, kind):
    x = np.random.default_rng(0).standard_normal((n, c, 5, 5))
    op = F.max_pool2d if kind == "max" else F.avg_pool2d
    assert declared(lambda: op(tinydl.tensor(x), kernel, stride), f"{kind}_pool2d") \
        == counting(naive_pool, x, kernel, stride, kind)


def naive_sum(x, axes):
    moved = np.moveaxis(x, axes, list(range(len(axes)))).reshape(math.prod(x.shape[a] for a in axes), -1)
    for column in moved.T:
        total = Counted(column[0])
        for value in column[1:]:
            total = total + value


@settings(max_examples=10, deadline=None)
@given(st.lists(small, min_size=1, max_size=3), st.data())
def test_sum_and_elementwise_formulas(shape, data):
    x = np.ones(shape)
    axes = data.draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True))
    assert declared(lambda: F.sum(tinydl.tensor(x), tuple(axes)), "sum") == counting(naive_sum, x, axes)
    row = np.ones(shape[-1:])
    assert declared(lambda: tinydl.tensor(x) * tinydl.tensor(row), "mul") == x.size  # one product per element
