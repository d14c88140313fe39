"""What the fuzzer found in the checkers themselves: gradgradcheck must fail on a wrong second derivative and pass
on a right one. Each test builds an op whose first derivative is right and whose second is known."""
import numpy as np
import pytest

import tinydl
from tinydl.autograd import Function
from tinydl.gradcheck import GradcheckError, gradcheck, gradgradcheck


class SquareHidingItsSecondDerivative(Function):
    """y = x^2 with dx = gy * 2x, where 2x is a constant array: the first derivative is right, the second (d/dx
    of gy * 2x should be 2 gy) comes out as 0."""

    name = "square"

    def forward(self, x):
        return x * x

    def backward(self, gy):
        return gy * tinydl.Tensor(2 * self.inputs[0].data)


def hiding_square(x):
    return SquareHidingItsSecondDerivative()(x)


def honest_square(x):
    return x * x


def point():
    return tinydl.Tensor(np.array([0.3, -1.2, 2.0]), requires_grad=True)


def recording(function):
    def wrapper(*tensors):
        with tinydl.enable_grad():
            return function(*tensors)
    return wrapper


def test_the_example_op_is_right_once_and_wrong_twice():
    """The ground truth of the two tests below, checked with grad mode forced on (the workaround)."""
    assert gradcheck(hiding_square, [point()])
    assert gradgradcheck(recording(honest_square), [point()])
    assert gradgradcheck(recording(honest_square), [point()], fast_mode=True)
    with pytest.raises(GradcheckError):
        gradgradcheck(recording(hiding_square), [point()])
    with pytest.raises(GradcheckError):
        gradgradcheck(recording(hiding_square), [point()], fast_mode=True)


def test_gradgradcheck_rejects_a_wrong_second_derivative():
    assert not gradgradcheck(hiding_square, [point()], raise_exception=False)


def test_gradgradcheck_fast_mode_accepts_a_right_second_derivative():
    assert gradgradcheck(honest_square, [point()], fast_mode=True, raise_exception=False)
