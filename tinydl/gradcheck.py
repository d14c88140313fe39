"""Checking analytic gradients against numerical ones (central finite differences in float64).

For a function f with inputs x_1..x_n and outputs y_1..y_m, the Jacobian of output k with respect to input i is
J_ki[a, b] = d y_k[a] / d x_i[b]. ``gradcheck`` builds it two ways:

* numerically, column by column: J[:, b] ~ (f(x + eps e_b) - f(x - eps e_b)) / (2 eps), the error of which is
  O(eps^2) in exact arithmetic, so float64 inputs and eps = 1e-6 give about 1e-9 relative accuracy;
* analytically, row by row: one backward pass per output element, with a one-hot upstream gradient.

and compares every element: |analytic - numerical| <= atol + rtol * |numerical|. ``fast_mode`` checks a single
random projection instead, v^T J u, which costs two forward passes and one backward pass whatever the sizes.
``gradgradcheck`` applies the same check to the backward pass itself (the function (x, v) -> v^T J(x)), which
is how second derivatives are verified.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy

from .autograd import enable_grad, grad as autograd_grad
from .backend import get_array_module, to_device
from .tensor import Tensor

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck", "numerical_jacobian", "analytical_jacobian"]


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with the numerical one."""


def _as_tuple(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _float_outputs(outputs: Sequence[Any]) -> list[Tensor]:
    """The outputs that carry a gradient: floating Tensors (indices and masks are skipped)."""
    return [o for o in outputs if isinstance(o, Tensor) and o.dtype.kind == "f"]


def _differentiable(inputs: Sequence[Any]) -> list[int]:
    positions = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not positions:
        raise ValueError("gradcheck: no input requires grad; mark the inputs to check with requires_grad=True")
    for i in positions:
        if inputs[i].dtype != numpy.float64:
            raise ValueError(f"gradcheck: input {i} has dtype {inputs[i].dtype}; finite differences need float64 "
                             "inputs to be meaningful (convert with .double())")
    return positions


def _evaluate(fn: Callable, inputs: Sequence[Any]) -> list[Any]:
    """The floating outputs of ``fn`` as float64 host arrays (no graph recorded)."""
    from .autograd import no_grad
    with no_grad():
        outputs = _float_outputs(_as_tuple(fn(*inputs)))
    return [numpy.array(to_device(o.data, "cpu"), dtype=numpy.float64) for o in outputs]


def numerical_jacobian(fn: Callable, inputs: Sequence[Any], eps: float = 1e-6) -> list[list[numpy.ndarray]]:
    """``J[i][k]``: the (out_k.size, in_i.size) Jacobian of floating output k with respect to input i that
    requires grad, by central differences. The inputs' data are perturbed in place and restored."""
    jacobians = []
    for i in _differentiable(inputs):
        data = inputs[i].data
        columns = []
        for b in range(data.size):
            position = numpy.unravel_index(b, data.shape)
            original = data[position].item()
            data[position] = original + eps
            plus = _evaluate(fn, inputs)
            data[position] = original - eps
            minus = _evaluate(fn, inputs)
            data[position] = original
            columns.append([(p - m).reshape(-1) / (2 * eps) for p, m in zip(plus, minus)])
        outputs = _evaluate(fn, inputs)
        jacobians.append([numpy.stack([column[k] for column in columns], axis=1) if columns
                          else numpy.zeros((outputs[k].size, 0)) for k in range(len(outputs))])
    return jacobians


def analytical_jacobian(fn: Callable, inputs: Sequence[Any]) -> list[list[numpy.ndarray]]:
    """``J[i][k]`` as in :func:`numerical_jacobian`, by one backward pass per output element."""
    positions = _differentiable(inputs)
    outputs = _float_outputs(_as_tuple(fn(*inputs)))
    jacobians = [[numpy.zeros((o.size, inputs[i].size)) for o in outputs] for i in positions]
    for k, output in enumerate(outputs):
        if not output.requires_grad:
            continue  # an output that does not depend on any input: its Jacobian is zero
        xp = get_array_module(output.data)
        for a in range(output.size):
            seed = xp.zeros(output.shape, dtype=output.dtype)
            seed.reshape(-1)[a] = 1
            grads = autograd_grad(output, [inputs[i] for i in positions], grad_outputs=Tensor(seed),
                                  retain_graph=True, allow_unused=True)
            for row, g in enumerate(grads):
                if g is not None:
                    jacobians[row][k][a] = to_device(g.data, "cpu").reshape(-1)
    return jacobians


def _fail(message: str, raise_exception: bool) -> bool:
    if raise_exception:
        raise GradcheckError(message)
    return False


def gradcheck(fn: Callable, inputs: Any, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              fast_mode: bool = False, raise_exception: bool = True, seed: int = 0) -> bool:
    """True when the analytic gradients of ``fn`` at ``inputs`` match central differences.

    ``inputs`` are Tensors (those with requires_grad=True are checked, and must be float64) or other values
    passed through. ``fn`` returns a Tensor or a tuple; non-floating outputs are ignored. On a mismatch it raises
    :class:`GradcheckError` naming the input, the output, the worst element and both values (or returns False
    with ``raise_exception=False``).
    """
    inputs = _as_tuple(inputs)
    from .autograd import no_grad
    with no_grad():
        if not _float_outputs(_as_tuple(fn(*inputs))):
            raise ValueError("gradcheck: fn returned no floating-point output, so there is nothing to check")
    if fast_mode:
        return _gradcheck_fast(fn, inputs, eps, atol, rtol, raise_exception, seed)
    numerical = numerical_jacobian(fn, inputs, eps)
    analytic = analytical_jacobian(fn, inputs)
    for row, i in enumerate(_differentiable(inputs)):
        for k, (a, n) in enumerate(zip(analytic[row], numerical[row])):
            excess = numpy.abs(a - n) - (atol + rtol * numpy.abs(n))
            if excess.size and excess.max() > 0:
                out_index, in_index = numpy.unravel_index(int(excess.argmax()), excess.shape)
                element = numpy.unravel_index(in_index, inputs[i].shape)
                return _fail(
                    f"gradcheck: Jacobian mismatch for output {k} with respect to input {i} (shape "
                    f"{tuple(inputs[i].shape)}): worst at input element {tuple(int(e) for e in element)}, output "
                    f"element {int(out_index)}: analytic {a[out_index, in_index]:.10g} vs numerical "
                    f"{n[out_index, in_index]:.10g} (atol={atol}, rtol={rtol})", raise_exception)
    return True


def _gradcheck_fast(fn: Callable, inputs: tuple, eps: float, atol: float, rtol: float, raise_exception: bool,
                    seed: int) -> bool:
    """Compare v^T J u computed both ways for a random unit direction u (over all inputs) and random v."""
    rng = numpy.random.default_rng(seed)
    positions = _differentiable(inputs)
    directions = {}
    for i in positions:
        u = rng.standard_normal(inputs[i].shape)
        directions[i] = get_array_module(inputs[i].data).asarray(u)
    norm = numpy.sqrt(sum(float((to_device(d, "cpu") ** 2).sum()) for d in directions.values())) or 1.0
    outputs = _float_outputs(_as_tuple(fn(*inputs)))
    projections = [rng.standard_normal(o.shape) for o in outputs]

    def shifted(sign: float) -> float:
        for i in positions:
            inputs[i].data += sign * eps * directions[i] / norm
        values = _evaluate(fn, inputs)
        for i in positions:
            inputs[i].data -= sign * eps * directions[i] / norm
        return sum(float((v * p).sum()) for v, p in zip(values, projections))

    numerical = (shifted(1.0) - shifted(-1.0)) / (2 * eps)
    live = [(o, p) for o, p in zip(outputs, projections) if o.requires_grad]
    analytic = 0.0
    if live:
        grads = autograd_grad([o for o, _ in live], [inputs[i] for i in positions],
                              grad_outputs=[Tensor(get_array_module(o.data).asarray(p)) for o, p in live],
                              allow_unused=True)
        for i, g in zip(positions, grads):
            if g is not None:
                analytic += float((to_device(g.data, "cpu") * to_device(directions[i], "cpu")).sum()) / norm
    if abs(analytic - numerical) > atol + rtol * abs(numerical):
        return _fail(f"gradcheck (fast mode): the projection v^T J u differs: analytic {analytic:.10g} vs "
                     f"numerical {numerical:.10g} (inputs {positions}, atol={atol}, rtol={rtol})", raise_exception)
    return True


def gradgradcheck(fn: Callable, inputs: Any, grad_outputs: Any = None, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, fast_mode: bool = False, raise_exception: bool = True, seed: int = 0) -> bool:
    """Check second derivatives: gradcheck of (inputs, v) -> grad(fn(inputs), inputs, v, create_graph=True).

    ``grad_outputs`` (the upstream gradients v) default to random float64 tensors; they are differentiated too.
    """
    inputs = _as_tuple(inputs)
    positions = _differentiable(inputs)
    outputs = _float_outputs(_as_tuple(fn(*inputs)))
    rng = numpy.random.default_rng(seed + 1)
    if grad_outputs is None:
        grad_outputs = [Tensor(get_array_module(o.data).asarray(rng.standard_normal(o.shape)), requires_grad=True)
                        for o in outputs]
    grad_outputs = list(_as_tuple(grad_outputs))
    count = len(inputs)

    def first_derivative(*values: Any) -> tuple:
        # grad mode on even when gradcheck evaluates this under no_grad: the first derivative needs fn's graph
        with enable_grad():
            primal, upstream = values[:count], values[count:]
            outs = _float_outputs(_as_tuple(fn(*primal)))
            live = [(o, v) for o, v in zip(outs, upstream) if o.requires_grad]
            if not live:
                return ()
            grads = autograd_grad([o for o, _ in live], [primal[i] for i in positions],
                                  grad_outputs=[v for _, v in live], create_graph=True, allow_unused=True)
            return tuple(g for g in grads if g is not None)

    return gradcheck(first_derivative, tuple(inputs) + tuple(grad_outputs), eps=eps, atol=atol, rtol=rtol,
                     fast_mode=fast_mode, raise_exception=raise_exception, seed=seed)
