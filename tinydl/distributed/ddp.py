"""``DistributedDataParallel``: one model replica per process, gradients averaged after every backward.

Used as in PyTorch::

    model = dist.DistributedDataParallel(Net())     # rank 0's weights and buffers copied to every rank
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    for images, labels in loader:                     # each rank loads its own shard of every global batch
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()                               # ... and here every rank's .grad becomes the average
        optimizer.step()                              # the same step on every rank: replicas stay identical

How the averaging is triggered: ``forward`` passes the wrapped model's outputs through an identity op whose
backward asks the autograd engine (:func:`tinydl.autograd.queue_callback`) to call :meth:`reduce_gradients` once
the backward pass has finished. So ``loss.backward()`` returns with averaged gradients, as a PyTorch user expects,
and nothing else in the training loop changes. The reduction runs after the whole backward rather than
overlapping it (see docs/distributed.md for why that is the right trade on a CPU), in buckets of about
``bucket_mb`` megabytes (:mod:`tinydl.distributed.buckets`).

Inside ``with model.no_sync():`` forwards are not followed by a reduction: gradients accumulate locally, and the
first backward after the block (through a forward made outside it) averages the accumulated sum. Because the
average is linear, reducing an already averaged gradient plus new local gradients is also exact.
"""
from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator

from ..autograd import Function, is_grad_enabled, queue_callback
from ..backend import device_of, device_scope, get_array_module
from ..costs import moves_only
from ..nn.module import Module
from ..tensor import Tensor
from .buckets import Bucket, plan_buckets
from .collectives import broadcast_in_place, sum_in_place
from .world import init

__all__ = ["DistributedDataParallel"]

_MEGABYTE = 1 << 20


class _ReduceAfterBackward(Function):
    """Identity on the model's output; its backward queues the gradient reduction for the end of the pass."""

    flops = moves_only

    def __init__(self, ddp: "DistributedDataParallel") -> None:
        self.ddp = ddp

    def forward(self, output: Any) -> Any:
        return output

    def backward(self, grad_output: Tensor) -> Tensor:
        queue_callback(self.ddp.reduce_gradients)
        return grad_output


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training over every rank of the MPI world.

    At wrap time, checks that every rank's model has the same parameters (names, shapes, dtypes), then copies
    rank 0's parameters and buffers to every rank. After each backward through its output, averages the
    gradients across ranks in buckets of about ``bucket_mb`` MB. ``.module`` is the wrapped model (save
    ``model.module.state_dict()`` to get the plain model's keys).

    Buffers (BatchNorm's running statistics) are copied at wrap time only; afterwards each rank updates its own
    from its own shard, and rank 0's are the ones a checkpoint keeps.
    """

    def __init__(self, module: Module, bucket_mb: float = 25.0) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected an nn.Module, got {type(module).__name__}")
        if not isinstance(bucket_mb, (int, float)) or isinstance(bucket_mb, bool) or not bucket_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_mb must be > 0, got {bucket_mb!r}")
        self.module = module
        self.bucket_mb = float(bucket_mb)
        self.reduction_seconds = 0.0  # total time spent averaging gradients (packing, waiting, moving, unpacking)
        self._world = init()
        self._synchronize = True
        self._buckets: list[Bucket] = []
        self._bucket_signature: tuple = ()
        self._check_same_parameters()
        self._broadcast_state()

    # --------------------------------------------------------------------------------------- at wrap time
    def _check_same_parameters(self) -> None:
        """Raise on every rank, naming the first parameter that differs, when the replicas are not alike."""
        mine = [(name, tuple(param.shape), param.data.dtype.name) for name, param in self.module.named_parameters()]
        if self._world.size == 1:
            return
        everyone = self._world.comm.allgather(mine)
        for position in range(max(len(listing) for listing in everyone)):
            entries = [listing[position] if position < len(listing) else None for listing in everyone]
            if all(entry == entries[0] for entry in entries):
                continue
            described = "; ".join(f"rank {number}: " + ("no parameter" if entry is None else
                                                          f"{entry[0]} of shape {entry[1]} {entry[2]}")
                                  for number, entry in enumerate(entries))
            name = next(entry[0] for entry in entries if entry is not None)
            raise ValueError(f"DistributedDataParallel: the ranks' models differ at parameter {position} "
                             f"({name}): {described}. Every rank must build the same model.")

    def _broadcast_state(self) -> None:
        """Copy rank 0's parameters and buffers into every rank's replica."""
        if self._world.size == 1:
            return
        for tensor in [*self.module.parameters(), *self.module.buffers()]:
            with device_scope(tensor.data):
                contiguous = get_array_module(tensor.data).ascontiguousarray(tensor.data)
                broadcast_in_place(contiguous, 0, self._world)
                if contiguous is not tensor.data:
                    tensor.data[...] = contiguous

    # --------------------------------------------------------------------------------------- every step
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        output = self.module(*args, **kwargs)
        if not (self._synchronize and is_grad_enabled()):
            return output
        return self._mark_for_reduction(output)

    def _mark_for_reduction(self, output: Any) -> Any:
        """The model's output with every Tensor that requires grad passed through the reduction trigger."""
        if isinstance(output, Tensor):
            return _ReduceAfterBackward(self)(output) if output.requires_grad else output
        if isinstance(output, (tuple, list)):
            return type(output)(self._mark_for_reduction(item) for item in output)
        if isinstance(output, dict):
            return {key: self._mark_for_reduction(item) for key, item in output.items()}
        return output

    def _current_buckets(self) -> list[Bucket]:
        """The buckets for the parameters as they are now (re-planned if the model moved or changed dtype)."""
        params = [param for param in self.module.parameters() if param.requires_grad]
        signature = tuple((id(p), p.data.shape, p.data.dtype.str, str(device_of(p.data))) for p in params)
        if signature != self._bucket_signature:
            self._buckets = plan_buckets(params, int(self.bucket_mb * _MEGABYTE))
            self._bucket_signature = signature
        return self._buckets

    def reduce_gradients(self) -> None:
        """Average every parameter's ``.grad`` across ranks now. Called automatically at the end of each backward
        through this model's output; call it yourself only after computing gradients some other way."""
        start = time.perf_counter()
        world = self._world
        if world.size > 1 or any(type(p.data).__module__.startswith("cupy") for p in self.module.parameters()):
            for bucket in self._current_buckets():
                with device_scope(bucket.buffer):  # work on the bucket's GPU, whichever is current
                    bucket.average(lambda buffer: sum_in_place(buffer, world), world.size)
        self.reduction_seconds += time.perf_counter() - start

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Forwards made inside the block skip the reduction: gradients accumulate locally until the next
        backward through a forward made outside it (gradient accumulation over several micro-batches)."""
        previous = self._synchronize
        self._synchronize = False
        try:
            yield
        finally:
            self._synchronize = previous

    def extra_repr(self) -> str:
        return f"world_size={self._world.size}, bucket_mb={self.bucket_mb:g}"
