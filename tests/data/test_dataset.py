"""Dataset, TensorDataset, Subset, random_split, default_collate and gather."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinydl.data import Dataset, Subset, TensorDataset, default_collate, gather, random_split
from tinydl.tensor import Tensor


class ListDataset(Dataset):
    """A dataset with only __getitem__ (no batched access): samples (features, label)."""

    def __init__(self, features, labels):
        self.features, self.labels = features, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.features[index], self.labels[index]


def test_tensor_dataset_indexes_rows_of_every_array():
    x = np.arange(20.0).reshape(10, 2)
    y = np.arange(10) % 3
    dataset = TensorDataset(x, Tensor(y))
    assert len(dataset) == 10
    features, label = dataset[4]
    np.testing.assert_array_equal(features, x[4])
    assert label == y[4]
    np.testing.assert_array_equal(dataset[-1][0], x[-1])
    batch_x, batch_y = dataset.__getitems__([7, 2, 2])
    np.testing.assert_array_equal(batch_x, x[[7, 2, 2]])
    np.testing.assert_array_equal(batch_y, y[[7, 2, 2]])


def test_tensor_dataset_rejects_mismatched_lengths_naming_the_shapes():
    with pytest.raises(ValueError, match=r"TensorDataset.*\(10, 2\).*\(9,\)"):
        TensorDataset(np.zeros((10, 2)), np.zeros(9))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(ValueError, match="sample axis"):
        TensorDataset(np.float32(3.0))


def test_indexing_errors_name_the_dataset_and_the_index():
    dataset = TensorDataset(np.zeros((5, 2)))
    with pytest.raises(IndexError, match=r"TensorDataset.*index 5.*5 samples"):
        dataset[5]
    with pytest.raises(IndexError, match=r"index -6"):
        dataset.__getitems__([0, -6])
    with pytest.raises(TypeError, match="integer"):
        dataset[1.5]
    with pytest.raises(TypeError, match="integers"):
        dataset.__getitems__(np.array([0.0, 1.0]))


def test_subset_maps_indices_and_keeps_batched_access():
    x = np.arange(10) * 10
    subset = Subset(TensorDataset(x), [9, 0, 4])
    assert len(subset) == 3
    assert subset[0][0] == 90
    np.testing.assert_array_equal(subset.__getitems__([2, 1])[0], [40, 0])
    with pytest.raises(IndexError, match="Subset"):
        Subset(TensorDataset(x), [10])


def test_subset_of_a_dataset_without_getitems_collates():
    dataset = ListDataset([np.full(2, i) for i in range(6)], list(range(6)))
    features, labels = Subset(dataset, [5, 1]).__getitems__([0, 1])
    np.testing.assert_array_equal(features, [[5, 5], [1, 1]])
    np.testing.assert_array_equal(labels, [5, 1])


@settings(max_examples=40, deadline=None)
@given(total=st.integers(0, 60), cuts=st.lists(st.integers(0, 60), min_size=0, max_size=4), seed=st.integers(0, 9))
def test_random_split_partitions_the_dataset(total, cuts, seed):
    cuts = sorted(min(c, total) for c in cuts)
    lengths = np.diff([0, *cuts, total]).tolist()
    parts = random_split(TensorDataset(np.arange(total)), lengths, seed=seed)
    assert [len(p) for p in parts] == lengths
    seen = np.concatenate([p.indices for p in parts]) if parts else np.array([])
    assert sorted(seen.tolist()) == list(range(total))
    again = random_split(TensorDataset(np.arange(total)), lengths, seed=seed)
    assert all(np.array_equal(a.indices, b.indices) for a, b in zip(parts, again))


def test_random_split_fractions_and_errors():
    parts = random_split(TensorDataset(np.arange(10)), [0.5, 0.3, 0.2], seed=0)
    assert [len(p) for p in parts] == [5, 3, 2]
    parts = random_split(TensorDataset(np.arange(11)), [0.5, 0.5], seed=0)
    assert [len(p) for p in parts] == [6, 5]
    assert not np.array_equal(random_split(TensorDataset(np.arange(50)), [50], seed=0)[0].indices,
                              random_split(TensorDataset(np.arange(50)), [50], seed=1)[0].indices)
    with pytest.raises(ValueError, match=r"random_split.*\[3, 3\].*10"):
        random_split(TensorDataset(np.arange(10)), [3, 3], seed=0)
    with pytest.raises(ValueError, match="sum to 1"):
        random_split(TensorDataset(np.arange(10)), [0.5, 0.2], seed=0)


def test_default_collate_stacks_fields_and_unwraps_tensors():
    samples = [(np.full((2, 2), i), i, Tensor(np.float32(i))) for i in range(3)]
    images, labels, weights = default_collate(samples)
    assert images.shape == (3, 2, 2) and labels.tolist() == [0, 1, 2] and weights.dtype == np.float32
    single, = default_collate([np.ones(2), np.zeros(2)])
    assert single.shape == (2, 2)
    with pytest.raises(ValueError, match="different numbers of fields"):
        default_collate([(1, 2), (1,)])
    with pytest.raises(ValueError, match="empty"):
        default_collate([])


def test_gather_prefers_getitems_and_falls_back_to_getitem():
    class Counting(ListDataset):
        batched_calls = 0

        def __getitems__(self, indices):
            Counting.batched_calls += 1
            return np.asarray(self.features)[indices], np.asarray(self.labels)[indices]

        def __getitem__(self, index):
            raise AssertionError("gather must not loop over samples when __getitems__ exists")

    features = np.arange(8).reshape(4, 2)
    fast = gather(Counting(features, np.arange(4)), np.array([3, 1]))
    slow = gather(ListDataset(features, np.arange(4)), np.array([3, 1]))
    assert Counting.batched_calls == 1
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)


def test_base_dataset_says_what_to_implement():
    with pytest.raises(NotImplementedError, match="__len__"):
        len(Dataset())
    with pytest.raises(NotImplementedError, match="__getitem__"):
        Dataset()[0]
