"""``Parameter``: a Tensor that a Module owns and an optimizer trains."""
from __future__ import annotations

from typing import Any

from ..creation import empty
from ..tensor import Tensor

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default; assigning one to a Module attribute registers it.

    ``Parameter(tensor_or_array)`` shares the array it is given (no copy), as PyTorch does.
    """

    __slots__ = ("_name",)

    def __init__(self, data: Any = None, requires_grad: bool = True):
        if data is None:
            data = empty(0)
        super().__init__(data, requires_grad=requires_grad)
        self._name: str | None = None  # the dotted name in the Module that owns it (set by Module), for messages

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
