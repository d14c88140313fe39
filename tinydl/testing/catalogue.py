"""The op catalogue: one declarative entry per op, and the runner that checks an entry.

An :class:`OpSpec` says how to call an op, how to draw valid inputs (a hypothesis strategy of :class:`Case`),
what an independent reference computes (plain NumPy on float64 arrays), and which properties hold. The runner
:func:`check_op` then verifies, for every drawn case:

1. forward: the op on float64 tensors matches the reference;
2. dtype: on float32 inputs the op returns float32 and still matches the reference (looser tolerance);
3. layout: non-contiguous inputs (strided or transposed views) give the same result as contiguous ones;
4. gradients: :func:`tinydl.gradcheck.gradcheck` in float64 for every differentiable input;
5. second derivatives: :func:`tinydl.gradcheck.gradgradcheck` when ``twice_differentiable``.

Writing an entry for your own op takes a few lines; see docs/testing.md.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..gradcheck import gradcheck, gradgradcheck
from ..tensor import Tensor
from .strategies import non_contiguous

__all__ = ["Case", "OpSpec", "check_op", "assert_close"]


@dataclasses.dataclass
class Case:
    """One call of an op: positional ``arrays`` (float arrays become Tensors; integer arrays too, without grad)
    and keyword arguments passed as they are."""

    arrays: tuple
    kwargs: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class OpSpec:
    """One catalogue entry.

    name: the public name (``tinydl.functional.<name>``) the entry covers.
    op: called as ``op(*tensors, **kwargs)``; returns a Tensor or a tuple (non-float outputs are compared but not
        differentiated).
    cases: a strategy drawing :class:`Case` objects with float64 arrays.
    reference: ``reference(*arrays, **kwargs)`` on float64 NumPy arrays, independent of tinydl.
    differentiable: positions of the arrays that get ``requires_grad`` (default: every floating array).
    twice_differentiable: run gradgradcheck as well.
    fast_gradcheck: check one random projection instead of full Jacobians (for large inputs).
    """

    name: str
    op: Callable[..., Any]
    cases: st.SearchStrategy
    reference: Callable[..., Any]
    differentiable: Sequence[int] | None = None
    twice_differentiable: bool = True
    fast_gradcheck: bool = False
    rtol: float = 1e-7
    atol: float = 1e-9
    float32_rtol: float = 1e-4
    float32_atol: float = 1e-5
    max_examples: int = 8


def assert_close(actual: Any, expected: Any, rtol: float = 1e-7, atol: float = 1e-9, name: str = "value") -> None:
    """Assert elementwise closeness of Tensors/arrays with shapes compared first; names ``name`` on failure."""
    actual = actual.data if isinstance(actual, Tensor) else actual
    expected = expected.data if isinstance(expected, Tensor) else expected
    from ..backend import to_device
    actual = numpy.asarray(to_device(actual, "cpu"))
    expected = numpy.asarray(to_device(expected, "cpu"))
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {actual.shape} != expected {expected.shape}")
    if actual.dtype.kind == "b" or expected.dtype.kind == "b" or actual.dtype.kind in "iu":
        if not numpy.array_equal(actual, expected):
            raise AssertionError(f"{name}: values differ:\n{actual}\nexpected\n{expected}")
        return
    numpy.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=name)


def _outputs(result: Any) -> tuple:
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def _call(spec: OpSpec, arrays: Sequence[Any], kwargs: dict, requires_grad: bool) -> tuple[list[Tensor], Any]:
    positions = _grad_positions(spec, arrays)
    tensors = [Tensor(a, requires_grad=requires_grad and i in positions) for i, a in enumerate(arrays)]
    return tensors, spec.op(*tensors, **kwargs)


def _grad_positions(spec: OpSpec, arrays: Sequence[Any]) -> list[int]:
    if spec.differentiable is not None:
        return list(spec.differentiable)
    return [i for i, a in enumerate(arrays) if numpy.asarray(a).dtype.kind == "f"]


def _check_forward(spec: OpSpec, case: Case) -> None:
    expected = _outputs(spec.reference(*[numpy.array(a) for a in case.arrays], **case.kwargs))
    _, result = _call(spec, case.arrays, case.kwargs, requires_grad=False)
    actual = _outputs(result)
    if len(actual) != len(expected):
        raise AssertionError(f"{spec.name}: {len(actual)} outputs, reference gives {len(expected)}")
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert_close(a, e, spec.rtol, spec.atol, name=f"{spec.name} output {k} (float64)")
    # float32 in, float32 out, still close to the reference
    single = [a.astype(numpy.float32) if a.dtype.kind == "f" else a for a in case.arrays]
    _, result32 = _call(spec, single, case.kwargs, requires_grad=False)
    for k, (a, e) in enumerate(zip(_outputs(result32), expected)):
        if numpy.asarray(e).dtype.kind == "f" and a.dtype != numpy.float32:
            raise AssertionError(f"{spec.name} output {k}: float32 inputs gave {a.dtype} (silent upcast)")
        assert_close(a, e, spec.float32_rtol, spec.float32_atol, name=f"{spec.name} output {k} (float32)")
    # the same values in non-contiguous layouts give the same result
    for kind in ("strided", "transposed"):
        strided = [non_contiguous(a, kind) if a.dtype.kind == "f" else a for a in case.arrays]
        _, result_nc = _call(spec, strided, case.kwargs, requires_grad=False)
        for k, (a, e) in enumerate(zip(_outputs(result_nc), actual)):
            assert_close(a, e, 1e-12, 1e-12, name=f"{spec.name} output {k} ({kind} input)")


def _check_gradients(spec: OpSpec, case: Case) -> None:
    positions = _grad_positions(spec, case.arrays)
    if not positions:
        return
    tensors = [Tensor(numpy.array(a), requires_grad=i in positions) for i, a in enumerate(case.arrays)]

    def fn(*inputs: Tensor) -> Any:
        return spec.op(*inputs, **case.kwargs)

    gradcheck(fn, tensors, fast_mode=spec.fast_gradcheck)
    if spec.twice_differentiable:
        gradgradcheck(fn, tensors, fast_mode=spec.fast_gradcheck)


def check_op(spec: OpSpec, max_examples: int | None = None) -> None:
    """Run every property of the catalogue on ``spec`` for hypothesis-drawn cases; raises on the first failure
    with the falsifying case printed by hypothesis."""

    @settings(max_examples=max_examples or spec.max_examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(case=spec.cases)
    def run(case: Case) -> None:
        _check_forward(spec, case)
        _check_gradients(spec, case)

    run()
