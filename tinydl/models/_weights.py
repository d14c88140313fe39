"""Copying the tensors of a weight file into a model's parameters, with every name and shape checked first.

A model lists, for each of its parameters, the file tensors it comes from (:class:`Source`): usually one tensor,
sometimes several stacked along the first axis (BERT's query, key and value become one in_proj_weight), optionally
rearranged on the way (a GGUF file's permuted query and key rows). Before anything is read, every needed
tensor must exist with the shape the model's configuration implies, and the file may hold no tensor the model has
no place for; otherwise :class:`WeightsMismatchError` names the file, the tensor, and the expected and found
shapes.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable

import numpy

from ..backend import device_of, to_device
from ..nn.module import Module

__all__ = ["Source", "WeightsMismatchError", "load_weights"]


class WeightsMismatchError(ValueError):
    """A weight file that does not fit the model its configuration describes."""


@dataclasses.dataclass(frozen=True)
class Source:
    """The file tensors ``names`` of one parameter, stacked along axis 0 in that order.

    ``rows``: how many rows of the parameter each tensor gives (default: equal shares), so each tensor's expected
    shape is (rows[i],) + the parameter's other dimensions. ``combine(arrays) -> array``: how the tensors become
    the parameter (default: the one tensor, or the concatenation along axis 0).
    """

    names: tuple[str, ...]
    rows: tuple[int, ...] | None = None
    combine: Callable[[list[Any]], Any] | None = None

    def expected_shapes(self, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The shape each named tensor must have for a parameter of ``shape``."""
        if len(self.names) == 1:
            return [shape]
        rows = self.rows or (shape[0] // len(self.names),) * len(self.names)
        return [(count,) + shape[1:] for count in rows]

    def values(self, read: Callable[[str], Any]) -> Any:
        arrays = [read(name) for name in self.names]
        if self.combine is not None:
            return self.combine(arrays)
        return arrays[0] if len(arrays) == 1 else numpy.concatenate(arrays, axis=0)


def load_weights(model: Module, sources: dict[str, Source], shapes: dict[str, tuple[int, ...]],
                 read: Callable[[str], Any], file: str, ignored: Iterable[str] = ()) -> None:
    """Fill every parameter of ``model`` from the file tensors named in ``sources``.

    ``shapes`` gives each file tensor's shape (known before reading it), ``read(name)`` its values;
    ``ignored`` names file tensors the model does not use on purpose (e.g. BERT's position_ids buffer).
    """
    parameters = dict(model.named_parameters())
    unmapped = sorted(set(parameters) - set(sources))
    if unmapped:  # a programming error in the model, not in the file
        raise RuntimeError(f"{type(model).__name__}: no file tensor is mapped to the parameters {unmapped}")
    for name, source in sources.items():
        for tensor, expected in zip(source.names, source.expected_shapes(tuple(parameters[name].shape))):
            if tensor not in shapes:
                raise WeightsMismatchError(f"{file}: no tensor {tensor!r}, which {type(model).__name__}.{name} "
                                           f"needs (shape {expected}); is this the right file for the config?")
            if tuple(shapes[tensor]) != expected:
                raise WeightsMismatchError(
                    f"{file}: tensor {tensor!r} has shape {tuple(shapes[tensor])}, but the config makes "
                    f"{type(model).__name__}.{name} expect {expected}")
    used = {tensor for source in sources.values() for tensor in source.names}
    unexpected = sorted(set(shapes) - used - set(ignored))
    if unexpected:
        shown = ", ".join(repr(t) for t in unexpected[:5]) + (", ..." if len(unexpected) > 5 else "")
        raise WeightsMismatchError(f"{file}: {len(unexpected)} tensors have no place in {type(model).__name__} "
                                   f"as configured ({shown}); does the config match the weights?")
    for name, source in sources.items():
        values = source.values(read)
        parameter = parameters[name]
        parameter.data[...] = to_device(numpy.asarray(values, dtype=parameter.dtype), device_of(parameter.data))

