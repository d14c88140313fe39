"""Copying the tensors of a weight file into a model's parameters, with every name and shape checked first.

A model lists, for each of its parameters, the file tensors it comes from (:class:`Source`): usually one tensor,
sometimes several concatenated along the first axis (BERT's query, key and value become one in_proj_weight),
optionally transformed on the way (a GGUF file's permuted query rows). Before anything is read, every needed
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
    """The file tensors ``names`` of one parameter, each passed through ``transform`` (if any), concatenated
    along axis 0 when there are several."""

    names: tuple[str, ...]
    transform: Callable[[Any], Any] | None = None


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
        expected = _part_shape(tuple(parameters[name].shape), len(source.names))
        for tensor in source.names:
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
        parts = [read(tensor) for tensor in source.names]
        if source.transform is not None:
            parts = [source.transform(part) for part in parts]
        values = parts[0] if len(parts) == 1 else numpy.concatenate(parts, axis=0)
        parameter = parameters[name]
        parameter.data[...] = to_device(numpy.asarray(values, dtype=parameter.dtype), device_of(parameter.data))


def _part_shape(shape: tuple[int, ...], parts: int) -> tuple[int, ...]:
    """The shape of each of ``parts`` equal pieces of ``shape`` along axis 0."""
    return shape if parts == 1 else (shape[0] // parts,) + shape[1:]

