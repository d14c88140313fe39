"""DataLoader: batches of a dataset as tuples of Tensors, shuffled reproducibly, loaded in the background.

Epoch ``e`` is drawn from a ``numpy.random.Generator`` whose state at the start of the epoch is remembered:
from it come the epoch's sample order (a permutation when shuffling) and a seed for the transforms; batch ``k``'s
transforms then use their own generator seeded with ``(transform_seed, k)``. The loader's position is therefore
just ``(epoch, batches already yielded, generator state at the epoch's start)``; ``state_dict()`` captures it and a
resumed loader regenerates exactly the same remaining batches, whatever was prefetched when the state was taken.

With a ``sampler`` (an iterable of dataset indices with ``__len__``, such as
:class:`tinydl.distributed.DistributedSampler`) the epoch's order is the sampler's instead, read when the epoch
starts; the sampler's own state (``sampler.state_dict()``, if it has one) is part of the loader's. A sampler that
names its shard (``sampler.rank``) gets transforms of its own per shard, seeded with ``(transform_seed, k, rank)``:
the ranks of a data-parallel job augment their different images independently while sharing one loader seed, so
their loader states are identical and one checkpoint resumes them all.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import Device, device as as_device, device_scope, get_array_module, to_device
from ..kernels.transfer import batch_to_gpu
from ..tensor import Tensor
from .dataset import gather
from .prefetch import Prefetcher
from .transforms import Transform

Batch = tuple[Tensor, ...]
BatchTransform = Callable[[Any, np.random.Generator], Any]  # transform(images, rng) -> images


@dataclass(frozen=True)
class _EpochPlan:
    """What an epoch's generator state determines: the sample order and the transforms' seed."""

    order: np.ndarray
    transform_seed: int
    next_state: dict  # generator state at the start of the following epoch


_TENSOR_DTYPES = {"f": np.float32, "i": np.int64, "u": np.int64, "b": np.bool_}  # by dtype kind


def _to_tensors(fields: Sequence[Any], device: Device | str | None) -> Batch:
    """Wrap the batched fields as Tensors on ``device``: floats as float32, integers as int64, booleans as bool.

    Host fields bound for a GPU cross together in one copy from pinned memory (:mod:`tinydl.kernels.transfer`),
    before the cast, so uint8 images travel in a quarter of the bytes."""
    arrays = []
    for field in fields:
        field = field.data if isinstance(field, Tensor) else field
        array = get_array_module(field).asarray(field)
        if array.dtype.kind not in _TENSOR_DTYPES:
            raise TypeError(f"DataLoader: cannot turn a batch field of dtype {array.dtype} (shape {array.shape}) "
                            f"into a Tensor; expected floats, integers or booleans")
        arrays.append(array)
    if device is not None and as_device(device).type == "cuda":
        on_host = [i for i, array in enumerate(arrays) if isinstance(array, np.ndarray)]
        for i, moved in zip(on_host, batch_to_gpu([arrays[i] for i in on_host], as_device(device))):
            arrays[i] = moved
    elif device is not None:
        arrays = [to_device(array, device) for array in arrays]
    with device_scope(arrays[0]):
        return tuple(Tensor(array.astype(_TENSOR_DTYPES[array.dtype.kind], copy=False)) for array in arrays)


class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size`` samples, yielding tuples of Tensors.

    Args:
        dataset: has ``__len__`` and ``__getitem__``; with ``__getitems__(indices)`` a batch is one gather call.
        batch_size: samples per batch.
        shuffle: a new random order each epoch (reproducible from ``seed``).
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        seed: seeds the loader's generator (order and transforms); ``None`` draws fresh entropy.
        transform: a batch transform ``transform(images, rng)`` applied to the first field of each batch.
        collate_fn: builds a batch from the list ``[dataset[i] for i in indices]``; replaces the gather call.
        prefetch: batches prepared ahead by a background thread; ``0`` loads synchronously.
        device: where the batch Tensors are placed; ``None`` leaves them where the dataset holds them.
        sampler: the indices of each epoch, in order (replaces ``shuffle``, which must then be False).

    Float fields become float32 Tensors, integer fields int64, boolean fields bool.
    """

    def __init__(self, dataset: Any, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: int | None = None, transform: Transform | BatchTransform | None = None,
                 collate_fn: Callable[[list[Any]], Sequence[Any]] | None = None, prefetch: int = 2,
                 device: Device | str | None = None, sampler: Any = None) -> None:
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(prefetch, (int, np.integer)) or isinstance(prefetch, bool) or prefetch < 0:
            raise ValueError(f"DataLoader: prefetch must be an integer >= 0, got {prefetch!r}")
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: dataset must have __len__ and __getitem__, got {type(dataset).__name__}")
        if sampler is not None and (shuffle or not hasattr(sampler, "__iter__") or not hasattr(sampler, "__len__")):
            raise ValueError(f"DataLoader: sampler must be an iterable of indices with __len__, given with "
                             f"shuffle=False (the sampler decides the order); got a {type(sampler).__name__} "
                             f"with shuffle={shuffle!r}")
        self.dataset = dataset
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.collate_fn = collate_fn
        self.prefetch = int(prefetch)
        self.device = device
        self._epoch = 0
        self._batches_done = 0
        self._epoch_state = np.random.default_rng(seed).bit_generator.state
        self._plan: _EpochPlan | None = None
        self._owner: object | None = None  # the iteration whose progress the position records

    def __len__(self) -> int:
        full, rest = divmod(self._epoch_length(), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    @property
    def epoch(self) -> int:
        """Index of the epoch in progress, or of the next one to start."""
        return self._epoch

    def _epoch_length(self) -> int:
        return len(self.dataset) if self.sampler is None else len(self.sampler)

    # ------------------------------------------------------------------------------------------ the position
    def _draw_plan(self) -> _EpochPlan:
        generator = np.random.default_rng()
        generator.bit_generator.state = self._epoch_state
        count = len(self.dataset)
        if self.sampler is not None:
            order = np.fromiter(self.sampler, dtype=np.int64, count=len(self.sampler))
        else:
            order = generator.permutation(count) if self.shuffle else np.arange(count)
        transform_seed = int(generator.integers(2**63))
        return _EpochPlan(order, transform_seed, generator.bit_generator.state)

    def _begin_epoch(self, owner: object) -> _EpochPlan:
        if self._owner is not None:  # an earlier iteration is still open: it is abandoned, as if broken off
            self._end_epoch()
        self._owner = owner
        self._plan = self._draw_plan()
        return self._plan

    def _end_epoch(self) -> None:
        self._epoch += 1
        self._batches_done = 0
        self._epoch_state = self._plan.next_state
        self._owner = None

    def state_dict(self) -> dict[str, Any]:
        """The position in the stream of batches: epoch, batches of it already yielded, and the generator state
        the epoch was drawn from (plus the sizes it depends on, checked when loading), and the sampler's state."""
        state = {"epoch": self._epoch, "batches_done": self._batches_done,
                 "generator": copy.deepcopy(self._epoch_state), "num_samples": len(self.dataset),
                 "batch_size": self.batch_size, "shuffle": self.shuffle, "drop_last": self.drop_last}
        if hasattr(self.sampler, "state_dict"):
            state["sampler"] = self.sampler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a position taken by ``state_dict()``: the next iteration yields the batches that would
        have followed. Any iteration still open stops recording its progress."""
        required = ("epoch", "batches_done", "generator", "num_samples", "batch_size", "shuffle", "drop_last")
        missing = [key for key in required if key not in state]
        if missing:
            raise KeyError(f"DataLoader.load_state_dict: missing keys {missing}; got {sorted(state)}")
        current = self.state_dict()
        for key in ("num_samples", "batch_size", "shuffle", "drop_last"):
            if state[key] != current[key]:
                raise ValueError(f"DataLoader.load_state_dict: the state was taken with {key}={state[key]!r} but "
                                 f"this loader has {key}={current[key]!r}; the data order would differ")
        if not 0 <= state["batches_done"] <= len(self):
            raise ValueError(f"DataLoader.load_state_dict: batches_done={state['batches_done']} is outside "
                             f"[0, {len(self)}]")
        probe = np.random.default_rng()
        try:
            probe.bit_generator.state = state["generator"]
        except (TypeError, ValueError, KeyError) as error:
            raise ValueError(f"DataLoader.load_state_dict: invalid generator state ({error})") from error
        if hasattr(self.sampler, "load_state_dict"):
            if "sampler" not in state:
                raise KeyError("DataLoader.load_state_dict: this loader's sampler has a state, but the saved "
                               "state has none (it was taken from a loader without a sampler)")
            self.sampler.load_state_dict(state["sampler"])
        self._epoch = int(state["epoch"])
        self._batches_done = int(state["batches_done"])
        self._epoch_state = probe.bit_generator.state
        self._owner = None

    # ------------------------------------------------------------------------------------------ the batches
    def _load_batch(self, indices: np.ndarray, number: int, transform_seed: int) -> Batch:
        if self.collate_fn is None:
            fields = gather(self.dataset, indices)
        else:
            fields = self.collate_fn([self.dataset[int(i)] for i in indices])
            fields = tuple(fields) if isinstance(fields, (tuple, list)) else (fields,)
        if self.transform is not None:
            shard = getattr(self.sampler, "rank", None)
            rng = np.random.default_rng([transform_seed, number] + ([] if shard is None else [int(shard)]))
            fields = (self.transform(fields[0], rng), *fields[1:])
        return _to_tensors(fields, self.device)

    def _batches(self, plan: _EpochPlan, first: int) -> Iterator[Batch]:
        for number in range(first, len(self)):
            indices = plan.order[number * self.batch_size:(number + 1) * self.batch_size]
            yield self._load_batch(indices, number, plan.transform_seed)

    def __iter__(self) -> Iterator[Batch]:
        return self._iterate()

    def _iterate(self) -> Iterator[Batch]:
        owner = object()
        plan = self._begin_epoch(owner)
        batches = self._batches(plan, self._batches_done)
        source = Prefetcher(batches, self.prefetch) if self.prefetch else batches
        try:
            for batch in source:
                if self._owner is owner:
                    self._batches_done += 1
                yield batch
        finally:
            source.close()
            if self._owner is owner:
                self._end_epoch()

    def __repr__(self) -> str:
        return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, prefetch={self.prefetch}, "
                f"epoch={self._epoch})")
