"""Gradient buckets: many small gradients averaged in a few large messages.

A collective costs a fixed latency plus a time per byte. Reducing each of a model's gradients on its own pays the
latency once per parameter; packing them into flat buffers of about ``bucket_mb`` megabytes pays it once per
bucket and keeps every message large enough to run at full bandwidth.

Parameters are packed in a fixed order, the reverse of ``module.parameters()`` (the order in which backward
produces gradients, last layer first), starting a new bucket when one is full or when the dtype or device changes.
Every rank builds the same buckets from the same model, so the i-th message of every rank holds the same
parameters: that is what makes the elementwise sum meaningful.

Each bucket's buffer holds the gradients, flattened one after the other, followed by one *presence count* per
parameter: 1 where this rank has a gradient, 0 where it has none (a layer this rank's batch did not use; its
gradient travels as zeros, so every rank still sends the same message and no rank waits for one that never comes).
After the sum, a parameter whose count is 0 got no gradient on any rank and keeps ``grad = None``, as it would in
one process on the whole batch; any other gets the averaged gradient.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..backend import device_of, device_scope, get_array_module, to_device
from ..nn.parameter import Parameter
from ..tensor import Tensor

__all__ = ["Bucket", "plan_buckets"]


@dataclass
class Bucket:
    """Parameters whose gradients travel together, and the flat buffer they travel in."""

    params: list[Parameter]
    buffer: Any  # gradients (sum of the parameters' sizes) then one presence count per parameter

    @property
    def count_offset(self) -> int:
        return self.buffer.size - len(self.params)

    def average(self, sum_in_place: Callable[[Any], None], world_size: int) -> None:
        """Replace every parameter's gradient by the mean over the ranks (None stays None only when it is None on
        every rank): pack, sum across ranks, unpack divided by the number of ranks."""
        buffer, offset = self.buffer, 0
        counts_at = self.count_offset
        for number, param in enumerate(self.params):
            size = param.data.size
            if param.grad is None:
                buffer[offset:offset + size] = 0
                buffer[counts_at + number] = 0
            else:
                buffer[offset:offset + size] = param.grad.data.reshape(-1)
                buffer[counts_at + number] = 1
            offset += size
        sum_in_place(buffer)
        present = to_device(buffer[counts_at:], "cpu") > 0
        xp = get_array_module(buffer)
        offset = 0
        for param, has_gradient in zip(self.params, present):
            size = param.data.size
            if has_gradient:  # the mean, written straight into .grad (one pass over the memory)
                total = buffer[offset:offset + size].reshape(param.shape)
                if param.grad is None:
                    param.grad = Tensor(total / world_size)
                else:
                    xp.divide(total, world_size, out=param.grad.data)
            offset += size


def _bucket_key(param: Parameter) -> tuple[str, str]:
    return str(device_of(param.data)), param.data.dtype.str


def plan_buckets(params: list[Parameter], bucket_bytes: int) -> list[Bucket]:
    """Pack ``params`` (in reverse order) into buckets of at least ``bucket_bytes`` bytes, except the last of each
    dtype/device run; a parameter larger than ``bucket_bytes`` gets a bucket of its own."""
    groups: list[list[Parameter]] = []
    filled = 0
    for param in reversed(params):
        if not groups or filled >= bucket_bytes or _bucket_key(param) != _bucket_key(groups[-1][0]):
            groups.append([])
            filled = 0
        groups[-1].append(param)
        filled += param.data.nbytes
    buckets = []
    for group in groups:
        first = group[0].data
        size = sum(param.data.size for param in group) + len(group)
        with device_scope(first):
            buckets.append(Bucket(group, get_array_module(first).zeros(size, dtype=first.dtype)))
    return buckets
