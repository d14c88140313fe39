"""The autograd engine: accumulation, broadcasting, long graphs, higher order, graph freeing and grad mode."""
import threading

import numpy as np
import pytest

import tinydl
import tinydl.functional as F
from tinydl.autograd import Function
from tinydl.testing import GradcheckError, Case, OpSpec, arrays, check_op, gradcheck


def test_reused_non_leaf_accumulates():
    a = tinydl.tensor([1.0, -2.0], requires_grad=True)
    b = a + a
    c = b + b
    c.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [4.0, 4.0])


def test_diamond_graph_gradient():
    x = tinydl.tensor(3.0, dtype=tinydl.float64, requires_grad=True)
    y = x * x
    z = y * x + y          # z = x^3 + x^2, dz/dx = 3x^2 + 2x = 33
    z.backward()
    assert x.grad.item() == pytest.approx(33.0)


def test_broadcast_gradient_is_summed_to_input_shape():
    a = tinydl.randn(3, 1, 4, requires_grad=True)
    b = tinydl.randn(5, 1, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.shape == (3, 1, 4) and b.grad.shape == (5, 1)
    np.testing.assert_allclose(a.grad.numpy(), np.broadcast_to(b.numpy().sum(), (3, 1, 4)), rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), np.full((5, 1), a.numpy().sum()), rtol=1e-5)


def test_hundred_thousand_op_chain_backpropagates_without_recursion():
    x = tinydl.tensor(1.0, dtype=tinydl.float64, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad.item() == 1.0


def test_second_derivative_of_tanh():
    values = np.linspace(-2, 2, 7)
    x = tinydl.tensor(values, requires_grad=True)
    (first,) = tinydl.grad(F.tanh(x).sum(), x, create_graph=True)
    (second,) = tinydl.grad(first.sum(), x)
    t = np.tanh(values)
    np.testing.assert_allclose(first.detach().numpy(), 1 - t ** 2, rtol=1e-12)
    np.testing.assert_allclose(second.numpy(), -2 * t * (1 - t ** 2), rtol=1e-12)


def test_third_derivative_through_create_graph():
    x = tinydl.tensor(0.7, dtype=tinydl.float64, requires_grad=True)
    (d1,) = tinydl.grad(x ** 4, x, create_graph=True)
    (d2,) = tinydl.grad(d1, x, create_graph=True)
    (d3,) = tinydl.grad(d2, x)
    assert d3.item() == pytest.approx(24 * 0.7)


def test_grad_does_not_touch_dot_grad_and_handles_non_leaf_inputs():
    x = tinydl.randn(3, requires_grad=True)
    h = x * 2
    y = (h * h).sum()
    (gh,) = tinydl.grad(y, h)
    np.testing.assert_allclose(gh.numpy(), 2 * h.detach().numpy(), rtol=1e-6)
    assert x.grad is None


def test_gradient_accumulates_across_backward_calls():
    x = tinydl.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0])


def test_two_leaves_never_share_a_grad_array():
    a = tinydl.randn(3, requires_grad=True)
    b = tinydl.randn(3, requires_grad=True)
    (a + b).sum().backward()
    a.grad.data *= 0  # an in-place change to one grad (as clip_grad_norm_ does) must not change the other
    assert np.all(b.grad.numpy() == 1.0)


def test_second_backward_through_freed_graph_says_retain_graph():
    x = tinydl.randn(3, requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = tinydl.randn(3, requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * np.exp(x.numpy() if not x.requires_grad else x.detach().numpy()),
                               rtol=1e-6)


def test_backward_on_non_scalar_needs_a_gradient():
    y = tinydl.randn(2, 3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"scalar outputs.*\(2, 3\)"):
        y.backward()
    y.backward(tinydl.ones(2, 3))


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="int64"):
        tinydl.tensor([1, 2, 3], requires_grad=True)


def test_no_grad_records_nothing_and_works_as_decorator():
    x = tinydl.randn(3, requires_grad=True)
    with tinydl.no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf

    @tinydl.no_grad()
    def double(t):
        return t * 2

    assert not double(x).requires_grad
    with tinydl.no_grad():
        with tinydl.enable_grad():
            assert (x * 2).requires_grad
    assert tinydl.is_grad_enabled()


def test_grad_mode_is_thread_local():
    seen = {}

    def worker():
        with tinydl.no_grad():
            seen["worker"] = tinydl.is_grad_enabled()
            started.set()
            release.wait(5)

    started, release = threading.Event(), threading.Event()
    thread = threading.Thread(target=worker)
    thread.start()
    started.wait(5)
    seen["main"] = tinydl.is_grad_enabled()
    release.set()
    thread.join()
    assert seen == {"worker": False, "main": True}


class WrongSquare(Function):
    """x^2 with a deliberately wrong derivative (x instead of 2x)."""

    def forward(self, x):
        return x * x

    def backward(self, gy):
        return gy * self.inputs[0]


def test_gradcheck_catches_a_wrong_backward():
    x = tinydl.randn(4, dtype=tinydl.float64, requires_grad=True)
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(lambda t: WrongSquare()(t), (x,))
    with pytest.raises(GradcheckError, match="fast mode"):
        gradcheck(lambda t: WrongSquare()(t), (x,), fast_mode=True)
    assert gradcheck(lambda t: WrongSquare()(t), (x,), raise_exception=False) is False


def test_catalogue_runner_catches_a_wrong_backward():
    spec = OpSpec("wrong_square", lambda x: WrongSquare()(x), arrays(low=0.5, high=2).map(lambda a: Case((a,))),
                  lambda x: x * x)
    with pytest.raises(GradcheckError):
        check_op(spec)


def test_catalogue_runner_catches_a_wrong_forward():
    spec = OpSpec("off_by_one", lambda x: x * x, arrays().map(lambda a: Case((a,))), lambda x: x * x + 1)
    with pytest.raises(AssertionError):
        check_op(spec)


def test_catalogue_runner_catches_a_silent_upcast():
    spec = OpSpec("upcast", lambda x: x.double() * 1.0, arrays().map(lambda a: Case((a,))), lambda x: x)
    with pytest.raises(AssertionError, match="upcast"):
        check_op(spec)


def test_once_differentiable_function_refuses_create_graph():
    class Once(Function):
        once_differentiable = True

        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy * 2

    x = tinydl.randn(3, dtype=tinydl.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="differentiable only once"):
        tinydl.grad(Once()(x).sum(), x, create_graph=True)
