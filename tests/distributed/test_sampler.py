"""DistributedSampler's shards, checked as properties over dataset sizes, world sizes, seeds and epochs, and its
use inside DataLoader (state in the loader's state, exact resume, per-rank augmentation)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tinydl.data import DataLoader, TensorDataset, gather
from tinydl.distributed import DistributedSampler

settings_space = dict(size=st.integers(1, 120), world=st.integers(1, 9), seed=st.integers(0, 2**31),
                      epoch=st.integers(0, 50), shuffle=st.booleans())


def shards(size, world, **options):
    return [list(DistributedSampler(range(size), num_replicas=world, rank=r, **options)) for r in range(world)]


@given(**settings_space)
def test_padded_shards_are_equal_in_length_cover_everything_and_repeat_at_most_world_minus_one(size, world, seed,
                                                                                              epoch, shuffle):
    sampler_shards = [DistributedSampler(range(size), num_replicas=world, rank=r, shuffle=shuffle, seed=seed)
                      for r in range(world)]
    for sampler in sampler_shards:
        sampler.set_epoch(epoch)
    lists = [list(s) for s in sampler_shards]
    assert len({len(shard) for shard in lists}) == 1 and all(len(s) == len(shard) for s, shard in
                                                             zip(sampler_shards, lists))
    everything = [index for shard in lists for index in shard]
    assert set(everything) == set(range(size))
    assert len(everything) == -(-size // world) * world
    if size >= world:  # each padded index is repeated once; without padding the shards are disjoint
        assert sum(count - 1 for count in Counter(everything).values()) == len(everything) - size < world
    if size % world == 0:
        assert len(everything) == len(set(everything))


@given(**settings_space)
def test_drop_last_shards_are_disjoint_equal_and_miss_fewer_than_world(size, world, seed, epoch, shuffle):
    if size < world:
        with pytest.raises(ValueError, match="without data"):
            DistributedSampler(range(size), num_replicas=world, rank=0, drop_last=True)
        return
    lists = shards(size, world, shuffle=shuffle, seed=seed, drop_last=True)
    everything = [index for shard in lists for index in shard]
    assert len(everything) == len(set(everything)) == size // world * world
    assert {len(shard) for shard in lists} == {size // world}


@given(**settings_space)
def test_unpadded_evaluation_shards_partition_the_dataset(size, world, seed, epoch, shuffle):
    lists = shards(size, world, shuffle=shuffle, seed=seed, pad=False)
    assert sorted(index for shard in lists for index in shard) == list(range(size))
    assert max(map(len, lists)) - min(map(len, lists)) <= 1


def test_every_rank_sees_the_same_epoch_order_and_epochs_differ():
    samplers = [DistributedSampler(range(50), num_replicas=3, rank=r, seed=4) for r in range(3)]
    first = [s.epoch_order().tolist() for s in samplers]
    assert first[0] == first[1] == first[2]
    for s in samplers:
        s.set_epoch(1)
    assert samplers[0].epoch_order().tolist() != first[0]
    assert sorted(set(first[0])) == list(range(50)) and len(first[0]) == 51  # padded to 3 x 17


def test_loader_with_a_sampler_resumes_mid_epoch_exactly_and_augments_per_rank():
    data = TensorDataset(np.arange(40, dtype=np.float32).reshape(20, 2), np.arange(20))
    noise = lambda images, rng: images + rng.standard_normal(images.shape)  # noqa: E731

    def loader(rank):
        sampler = DistributedSampler(data, num_replicas=2, rank=rank, seed=3)
        return sampler, DataLoader(data, batch_size=3, sampler=sampler, seed=9, transform=noise)

    sampler, first = loader(0)
    sampler.set_epoch(2)
    assert len(first) == 4  # 10 indices per rank in batches of 3
    batches = []
    for number, (images, labels) in enumerate(first):
        batches.append((images.data.copy(), labels.data.copy()))
        if number == 1:
            state = first.state_dict()
    assert state["sampler"]["epoch"] == 2 and state["batches_done"] == 2
    assert sorted(np.concatenate([labels for _, labels in batches]).tolist()) == sorted(sampler.indices().tolist())
    _, resumed = loader(0)
    resumed.load_state_dict(state)
    for (images, labels), (expected_images, expected_labels) in zip(resumed, batches[2:]):
        np.testing.assert_array_equal(labels.data, expected_labels)
        np.testing.assert_array_equal(images.data, expected_images)
    other_sampler, other = loader(1)
    other_sampler.set_epoch(2)
    other_images, other_labels = next(iter(other))
    clean = gather(data, other_labels.data)[0]
    first_noise = batches[0][0] - gather(data, batches[0][1])[0]
    assert not np.allclose(other_images.data - clean, first_noise)  # rank 1 draws its own augmentation


def test_a_state_from_another_world_size_is_refused():
    state = DistributedSampler(range(10), num_replicas=2, rank=0).state_dict()
    with pytest.raises(ValueError, match="num_replicas=2 but this sampler has num_replicas=4"):
        DistributedSampler(range(10), num_replicas=4, rank=0).load_state_dict(state)


def test_loader_refuses_a_sampler_with_shuffle():
    with pytest.raises(ValueError, match="shuffle=False"):
        DataLoader(range(4), batch_size=2, shuffle=True, sampler=DistributedSampler(range(4), num_replicas=1,
                                                                                     rank=0))
