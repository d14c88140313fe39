"""What the fuzzer found in the checkers themselves (fixed in afcd3bd): gradgradcheck must fail on a wrong second
derivative and pass on a right one, in both modes. The ops have a right first derivative and a known second."""
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


@pytest.mark.parametrize("fast_mode", [False, True])
def test_gradgradcheck_rejects_a_wrong_second_derivative(fast_mode):
    assert gradcheck(hiding_square, [point()])  # the first derivative is right: only the second is wrong
    assert not gradgradcheck(hiding_square, [point()], fast_mode=fast_mode, raise_exception=False)


@pytest.mark.parametrize("fast_mode", [False, True])
def test_gradgradcheck_accepts_a_right_second_derivative(fast_mode):
    assert gradgradcheck(honest_square, [point()], fast_mode=fast_mode)


def test_gradgradcheck_works_when_called_under_no_grad():
    """The bug the fuzzer found: the first derivative was evaluated under no_grad, recorded no graph, and the
    check compared nothing (full mode) or compared with zero (fast mode)."""
    with tinydl.no_grad():
        assert gradgradcheck(honest_square, [point()])
        assert not gradgradcheck(hiding_square, [point()], raise_exception=False)
