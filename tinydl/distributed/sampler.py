"""``DistributedSampler``: which samples of an epoch each rank loads.

Every rank draws the same order of the dataset for epoch ``e`` (a permutation from a generator seeded with
``(seed, e)`` when shuffling, ``0 .. N-1`` otherwise), and rank ``r`` of ``W`` takes every W-th index of it,
starting at position ``r``: ``order[r], order[r + W], order[r + 2W], ...``. So the shards of one epoch are
disjoint, and together they cover the dataset.

Equal counts: every rank must run the same number of steps (each step ends with a collective that all ranks join),
so every shard must have the same length. When ``W`` does not divide ``N``:

* by default the order is *padded by wrap-around*: its first ``W * ceil(N / W) - N`` indices are appended again,
  so a few samples are seen twice in the epoch (at most ``W - 1`` of them);
* with ``drop_last=True`` the order is cut to ``W * floor(N / W)`` indices instead, so a few samples (at most
  ``W - 1``, different ones each epoch when shuffling) are not seen in that epoch.

For evaluation, where exact totals matter and no step needs the ranks in lockstep, ``pad=False`` gives shards
``order[r::W]`` whose lengths differ by at most one: each sample is seen exactly once, and summing counts and
losses over ranks (``dist.all_reduce``) gives exact totals.

Call ``set_epoch(e)`` at the start of every epoch (as in PyTorch), or every epoch reuses epoch 0's order. A
:class:`~tinydl.data.DataLoader` given this sampler keeps its state (``state_dict``) in its own, so a resumed run
continues the same epoch's order.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from .world import init

__all__ = ["DistributedSampler"]


class DistributedSampler:
    """Indices of this rank's shard of ``dataset``, the same order on every rank for a given epoch.

    Args:
        dataset: anything with ``__len__``.
        shuffle: a new order each epoch, from ``(seed, epoch)``; otherwise ``0 .. N-1``.
        seed: must be the same on every rank.
        drop_last: cut the order to a multiple of the world size instead of padding it.
        num_replicas, rank: the world size and this rank (default: from the MPI world).
        pad: equal shard lengths (padding or dropping); ``False`` for evaluation shards of exact total length.
    """

    def __init__(self, dataset: Any, shuffle: bool = True, seed: int = 0, drop_last: bool = False, *,
                 num_replicas: int | None = None, rank: int | None = None, pad: bool = True) -> None:
        if not hasattr(dataset, "__len__"):
            raise TypeError(f"DistributedSampler: dataset must have __len__, got {type(dataset).__name__}")
        world = init() if num_replicas is None or rank is None else None
        self.num_replicas = int(world.size if num_replicas is None else num_replicas)
        self.rank = int(world.rank if rank is None else rank)
        if self.num_replicas < 1 or not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"DistributedSampler: rank {self.rank} is not in a world of {self.num_replicas}")
        if len(dataset) == 0:
            raise ValueError("DistributedSampler: the dataset is empty")
        if drop_last and len(dataset) < self.num_replicas:
            raise ValueError(f"DistributedSampler: drop_last=True with {len(dataset)} samples for "
                             f"{self.num_replicas} ranks would leave every rank without data")
        self.dataset = dataset
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.pad = bool(pad)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s order from now on (call it with the same number on every rank)."""
        self.epoch = int(epoch)

    @property
    def total_size(self) -> int:
        """Length of the (padded or cut) order that is split between the ranks."""
        count, world = len(self.dataset), self.num_replicas
        if not self.pad:
            return count
        return count // world * world if self.drop_last else -(-count // world) * world

    def __len__(self) -> int:
        start, total = self.rank, self.total_size
        return max(0, -(-(total - start) // self.num_replicas))

    def epoch_order(self) -> np.ndarray:
        """The whole order of the current epoch, padded or cut to ``total_size`` (the same on every rank)."""
        count = len(self.dataset)
        order = np.random.default_rng([self.seed, self.epoch]).permutation(count) if self.shuffle else \
            np.arange(count)
        total = self.total_size
        if total > count:  # wrap around, as many times as needed when there are fewer samples than ranks
            order = np.resize(order, total)
        return order[:total]

    def indices(self) -> np.ndarray:
        """This rank's shard of the current epoch's order."""
        return self.epoch_order()[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    # ------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """What determines the order (identical on every rank, so rank 0's checkpoint serves them all)."""
        return {"epoch": self.epoch, "seed": self.seed, "shuffle": self.shuffle, "drop_last": self.drop_last,
                "pad": self.pad, "num_replicas": self.num_replicas, "num_samples": len(self.dataset)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue with the epoch saved in ``state``; refuses a state taken with other settings or world size,
        whose shards would differ."""
        current = self.state_dict()
        missing = sorted(set(current) - set(state))
        if missing:
            raise KeyError(f"DistributedSampler.load_state_dict: missing keys {missing}")
        for key in ("seed", "shuffle", "drop_last", "pad", "num_replicas", "num_samples"):
            if state[key] != current[key]:
                raise ValueError(f"DistributedSampler.load_state_dict: the state was taken with {key}="
                                 f"{state[key]!r} but this sampler has {key}={current[key]!r}; the shards would "
                                 f"differ (resume with the same world size and settings)")
        self.epoch = int(state["epoch"])

    def __repr__(self) -> str:
        return (f"DistributedSampler(rank {self.rank} of {self.num_replicas}, {len(self)} of "
                f"{len(self.dataset)} samples, shuffle={self.shuffle}, seed={self.seed}, epoch={self.epoch})")
