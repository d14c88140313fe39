"""Tools for testing ops: gradient checkers, hypothesis strategies and the op catalogue (public API).

Requires ``hypothesis`` (``pip install 'tinydl[test]'``).
"""
from ..gradcheck import GradcheckError, analytical_jacobian, gradcheck, gradgradcheck, numerical_jacobian
from .catalogue import Case, OpSpec, assert_close, check_op
from .strategies import arrays, broadcastable_shapes, dims_for, non_contiguous, shapes, tensors

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck", "numerical_jacobian", "analytical_jacobian", "Case",
           "OpSpec", "check_op", "assert_close", "arrays", "broadcastable_shapes", "shapes", "tensors",
           "non_contiguous", "dims_for"]
