"""What an op costs: floating-point operations and bytes moved, as declared next to each kernel.

Every ``Function`` subclass declares ``flops(self, inputs, outputs) -> int``, the FLOPs of its ``forward`` on the
raw input and output arrays. The conventions:

* one FLOP per scalar addition, subtraction, multiplication, division or comparison (a max is a comparison), and
  one per elementary function (exp, log, sqrt, tanh, erf);
* a sum of n numbers into one accumulator costs n additions, so a matrix product (M, K) @ (K, N) costs 2MNK and a
  reduction of n numbers to m results costs n - m (the first number of each result is not an addition);
* moving data (reshape, transpose, indexing, concatenation, casts, copies) costs 0 FLOPs: 0 is a declared count;
* an op that declares no formula is "not counted": tables print that, totals say how many calls they miss, and
  nothing ever counts it as 0. (The op catalogue's meta-test fails for such an op.)

A backward step costs the FLOPs of the Functions its formula calls (each counts itself) plus, for the few
backwards that compute on raw arrays (fused LSTM kernels, attention's softmax correction), what their
``backward_flops(self, grad_outputs, grad_inputs)`` declares.

Bytes moved default to what the op reads and writes: the sizes of its input and output arrays. An op that may
return a view (``returns_view``: reshape, transpose, broadcast_to, basic indexing) moves nothing when its outputs
are views of the input; an op can also declare its own ``bytes_moved(self, inputs, outputs)`` formula.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from .autograd import Function

__all__ = ["elementwise", "moves_only", "reduces", "views", "forward_flops", "backward_flops", "bytes_moved",
           "NOT_COUNTED"]

NOT_COUNTED = "not counted"

Formula = Callable[[Any, Sequence[Any], Sequence[Any]], int]


def elementwise(per_element: int) -> Formula:
    """``per_element`` FLOPs for every element of the (first) output."""
    def flops(self: Any, inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
        return per_element * outputs[0].size
    flops.__doc__ = f"{per_element} FLOP(s) per output element"
    return flops


def moves_only(self: Any, inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """0 FLOPs: the op only moves or selects data."""
    return 0


def reduces(self: Any, inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """n - m additions (or comparisons) to reduce n numbers to m results."""
    return inputs[0].size - outputs[0].size


def views(self: Any, inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """0 bytes moved: the result is a view of the input (NumPy copies nothing)."""
    return 0


def size(shape: Sequence[int]) -> int:
    return math.prod(shape)


# ------------------------------------------------------------------------------------------------ lookups
def forward_flops(function: "Function", inputs: Sequence[Any], outputs: Sequence[Any]) -> int | None:
    """FLOPs of ``function``'s forward on these arrays, or None when its class declares no formula."""
    formula = getattr(type(function), "flops", None)
    return None if formula is None else int(formula(function, inputs, outputs))


def backward_flops(function: "Function", grad_outputs: Sequence[Any], grad_inputs: Sequence[Any]) -> int:
    """FLOPs a backward step does on raw arrays itself (0 unless the class declares ``backward_flops``)."""
    formula = getattr(type(function), "backward_flops", None)
    return 0 if formula is None else int(formula(function, grad_outputs, grad_inputs))


def bytes_moved(function: "Function", inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """Bytes read and written: the op's declared ``bytes_moved`` formula, else all inputs plus all outputs."""
    formula = getattr(type(function), "bytes_moved", None)
    if formula is not None:
        return int(formula(function, inputs, outputs))
    if getattr(function, "returns_view", False) and all(getattr(o, "base", None) is not None for o in outputs):
        return 0
    return sum(int(a.nbytes) for a in list(inputs) + list(outputs) if a is not None and hasattr(a, "nbytes"))
