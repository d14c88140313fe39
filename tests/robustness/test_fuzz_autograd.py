"""Fuzzed autograd: hypothesis writes small random programs, and their gradients are checked.

A program is a DAG over a pool of values: it starts with 1-3 leaves of mutually broadcastable shapes and appends
one op at a time, each reading any earlier values (so intermediate results are reused, which is where engines
go wrong: accumulation of gradients that reach a node along several paths). Ops: broadcasting add/sub/mul,
division by a safe denominator (1 + b^2), tanh, exp of bounded values, sum/mean over a dim (keepdim or not),
reshape, transpose, indexing with slices and with repeated integer arrays, cat, matmul where shapes allow.
The program's outputs are its sinks (values no later op reads).

For each program, in float64:
1. forward: tinydl agrees with the same program run by NumPy;
2. gradcheck: the Jacobians of every output, by backward passes, match central finite differences;
3. ``.backward()`` into ``.grad`` (the engine's accumulation path) gives the finite-difference gradient of a
   random projection of the outputs, and twice that after a second backward;
4. gradgradcheck (fast mode, one random projection): second derivatives through ``create_graph``.

``HYPOTHESIS_PROFILE=ci-long`` draws many more programs than the default run.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import tinydl
import tinydl.functional as F
from tinydl.gradcheck import gradcheck, gradgradcheck, numerical_jacobian
from tinydl.testing import arrays, broadcastable_shapes

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "ci-long"
EXAMPLES = 3000 if LONG else 200
MAX_STEPS = 10 if LONG else 7
MAGNITUDE_LIMIT = 50.0  # steps whose result grows past this are not taken: finite differences stay accurate


# ---------------------------------------------------------------------------------------------- programs
@dataclasses.dataclass(frozen=True)
class Step:
    """``pool.append(op(pool[args[0]], ..., *params))``."""

    op: str
    args: tuple[int, ...]
    params: tuple = ()


@dataclasses.dataclass
class Program:
    leaves: list[np.ndarray]
    steps: list[Step]
    outputs: tuple[int, ...]

    def __repr__(self) -> str:  # a readable listing, printed by hypothesis for a falsifying example
        lines = [f"v{i} = leaf of shape {leaf.shape}" for i, leaf in enumerate(self.leaves)]
        for position, step in enumerate(self.steps, start=len(self.leaves)):
            args = ", ".join(f"v{a}" for a in step.args)
            params = "".join(f", {p!r}" for p in step.params)
            lines.append(f"v{position} = {step.op}({args}{params})")
        lines.append("outputs: " + ", ".join(f"v{i}" for i in self.outputs))
        return "\n".join(lines)


def _cat_numpy(a, b, dim):
    return np.concatenate([a, b], axis=dim)


# each op, once for tinydl Tensors and once for NumPy arrays (the forward reference)
TINYDL_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (1.0 + b * b),
    "tanh": F.tanh,
    "exp": lambda a: F.exp(F.tanh(a)),
    "sum": lambda a, dim, keepdim: a.sum(dim, keepdim=keepdim),
    "mean": lambda a, dim, keepdim: a.mean(dim, keepdim=keepdim),
    "reshape": lambda a, shape: a.reshape(shape),
    "transpose": lambda a, dim0, dim1: a.transpose(dim0, dim1),
    "index": lambda a, key: a[key],
    "cat": lambda a, b, dim: F.cat([a, b], dim),
    "matmul": lambda a, b: a @ b,
}
NUMPY_OPS = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": lambda a, b: a / (1.0 + b * b),
    "tanh": np.tanh,
    "exp": lambda a: np.exp(np.tanh(a)),
    "sum": lambda a, dim, keepdim: np.sum(a, axis=dim, keepdims=keepdim),
    "mean": lambda a, dim, keepdim: np.mean(a, axis=dim, keepdims=keepdim),
    "reshape": np.reshape,
    "transpose": np.swapaxes,
    "index": lambda a, key: a[key],
    "cat": _cat_numpy,
    "matmul": np.matmul,
}


def run(program: Program, values: list[Any], ops: dict) -> tuple:
    pool = list(values)
    for step in program.steps:
        pool.append(ops[step.op](*[pool[i] for i in step.args], *step.params))
    return tuple(pool[i] for i in program.outputs)


def _broadcastable(a: tuple, b: tuple) -> bool:
    return all(x == y or x == 1 or y == 1 for x, y in zip(a[::-1], b[::-1]))


def _matmul_fits(a: tuple, b: tuple) -> bool:
    if not a or not b:
        return False
    inner = b[0] if len(b) == 1 else b[-2]
    return a[-1] == inner and _broadcastable(a[:-2], b[:-2])


def _pick(draw: Any, candidates: list[int]) -> int:
    return draw(st.sampled_from(candidates))


@st.composite
def steps(draw: Any, pool: list[np.ndarray]) -> Step:
    """One op over the values computed so far (any feasible op, any feasible operands)."""
    shapes = [v.shape for v in pool]
    everyone = list(range(len(pool)))
    with_axes = [i for i in everyone if shapes[i]]
    feasible = ["add", "sub", "mul", "div", "tanh", "exp", "sum", "mean", "reshape"]
    if with_axes:
        feasible += ["index", "cat"]
    if any(len(s) >= 2 for s in shapes):
        feasible.append("transpose")
    pairs = [(i, j) for i in everyone for j in everyone if _matmul_fits(shapes[i], shapes[j])]
    if pairs:
        feasible.append("matmul")
    op = draw(st.sampled_from(feasible))
    if op in ("add", "sub", "mul", "div"):
        a = _pick(draw, everyone)
        b = _pick(draw, [j for j in everyone if _broadcastable(shapes[a], shapes[j])])  # a itself fits
        return Step(op, (a, b))
    if op in ("tanh", "exp"):
        return Step(op, (_pick(draw, everyone),))
    if op in ("sum", "mean"):
        a = _pick(draw, everyone)
        ndim = len(shapes[a])
        dim = draw(st.none() | st.integers(-ndim, ndim - 1)) if ndim else None
        return Step(op, (a,), (dim, draw(st.booleans())))
    if op == "reshape":
        a = _pick(draw, everyone)
        shape = shapes[a]
        size = int(np.prod(shape))
        target = draw(st.sampled_from([(size,), shape[::-1], shape + (1,), (1,) + shape, (-1, 1)]))
        return Step(op, (a,), (target,))
    if op == "transpose":
        a = _pick(draw, [i for i in everyone if len(shapes[i]) >= 2])
        ndim = len(shapes[a])
        return Step(op, (a,), (draw(st.integers(-ndim, ndim - 1)), draw(st.integers(-ndim, ndim - 1))))
    if op == "index":
        a = _pick(draw, with_axes)
        shape = shapes[a]
        axis = draw(st.integers(0, min(len(shape), 2) - 1))
        size = shape[axis]
        kind = draw(st.sampled_from(["slice", "integers", "integer"]))
        if kind == "slice":
            start = draw(st.integers(0, size - 1))
            step = draw(st.sampled_from([1, 2, -1]))
            part = slice(start, None, step) if step > 0 else slice(start, None, -1)
        elif kind == "integers":  # repeats allowed: their gradients must add up
            part = np.array(draw(st.lists(st.integers(-size, size - 1), min_size=1, max_size=4)))
        else:
            part = draw(st.integers(-size, size - 1))
        return Step(op, (a,), ((slice(None),) * axis + (part,),))
    if op == "cat":
        a = _pick(draw, with_axes)
        ndim = len(shapes[a])
        dim = draw(st.integers(-ndim, ndim - 1))
        axis = dim % ndim
        partners = [j for j in with_axes if len(shapes[j]) == ndim and
                    shapes[j][:axis] + shapes[j][axis + 1:] == shapes[a][:axis] + shapes[a][axis + 1:]]
        return Step(op, (a, _pick(draw, partners)), (dim,))
    a, b = draw(st.sampled_from(pairs))
    return Step("matmul", (a, b))


@st.composite
def programs(draw: Any, max_steps: int = MAX_STEPS) -> Program:
    count = draw(st.integers(1, 3))
    leaf_shapes = draw(broadcastable_shapes(count, min_dims=0, max_dims=3, max_side=3))
    leaves = [draw(arrays(shape, low=-2.0, high=2.0, contiguous=None)) for shape in leaf_shapes]
    pool = [np.array(leaf) for leaf in leaves]
    program_steps: list[Step] = []
    for _ in range(draw(st.integers(2, max_steps))):
        step = draw(steps(pool))
        value = NUMPY_OPS[step.op](*[pool[i] for i in step.args], *step.params)
        value = np.asarray(value, dtype=np.float64)
        if value.size == 0 or np.abs(value).max() > MAGNITUDE_LIMIT:
            continue
        pool.append(value)
        program_steps.append(step)
    read = {i for step in program_steps for i in step.args}
    outputs = tuple(i for i in range(len(leaves), len(pool)) if i not in read) or (len(pool) - 1,)
    return Program(leaves, program_steps, outputs)


# ------------------------------------------------------------------------------------------------- checks
def leaves_of(program: Program) -> list[tinydl.Tensor]:
    return [tinydl.Tensor(leaf, requires_grad=True) for leaf in program.leaves]  # layouts kept (views, too)


def forward(program: Program):
    return lambda *tensors: run(program, list(tensors), TINYDL_OPS)


def check_forward(program: Program) -> None:
    expected = run(program, [np.array(leaf) for leaf in program.leaves], NUMPY_OPS)
    actual = forward(program)(*leaves_of(program))
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == np.shape(e), f"output {k}: shape {a.shape} != NumPy's {np.shape(e)}"
        np.testing.assert_allclose(a.numpy(), e, rtol=1e-12, atol=1e-12, err_msg=f"output {k}")


def check_backward_accumulates(program: Program) -> None:
    """L = sum_k <w_k, out_k>: L.backward() gives dL/dleaf in .grad (finite differences), twice that after a
    second backward through the retained graph."""
    rng = np.random.default_rng(0)
    tensors = leaves_of(program)
    weights = [rng.standard_normal(np.shape(e)) for e in run(program, list(program.leaves), NUMPY_OPS)]

    def projected(*inputs):
        outputs = forward(program)(*inputs)
        return sum((o * tinydl.Tensor(w)).sum() for o, w in zip(outputs, weights))

    expected = [jacobians[0].reshape(tensors[i].shape) for i, jacobians in
                enumerate(numerical_jacobian(projected, tensors))]
    loss = projected(*tensors)
    if not loss.requires_grad:
        return
    loss.backward(retain_graph=True)
    for i, (t, e) in enumerate(zip(tensors, expected)):
        got = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
        np.testing.assert_allclose(got, e, rtol=1e-5, atol=1e-6, err_msg=f".grad of leaf {i}")
    loss.backward()
    for i, (t, e) in enumerate(zip(tensors, expected)):
        got = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
        np.testing.assert_allclose(got, 2 * e, rtol=1e-5, atol=1e-6, err_msg=f".grad of leaf {i}, twice")


FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ_SETTINGS
@given(program=programs())
def test_random_programs_have_correct_gradients(program):
    note(repr(program))
    check_forward(program)
    gradcheck(forward(program), leaves_of(program))
    check_backward_accumulates(program)
    gradgradcheck(forward(program), leaves_of(program), fast_mode=True)


# ------------------------------------------------------------------------ the generator itself is not vacuous
def test_programs_cover_every_op_and_reuse_values():
    """Across drawn programs, every op appears and some value is read by two steps (or twice by one)."""
    seen_ops, reused = set(), False

    @settings(max_examples=150, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(program=programs(max_steps=7))
    def collect(program):
        nonlocal reused
        seen_ops.update(step.op for step in program.steps)
        reads = [i for step in program.steps for i in step.args]
        reused = reused or len(reads) != len(set(reads))

    collect()
    assert seen_ops == set(TINYDL_OPS), f"ops never drawn: {set(TINYDL_OPS) - seen_ops}"
    assert reused
