"""DataLoader: batching, seeded shuffling, transforms, resumable state, background prefetch."""
import threading
import time
import traceback

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinydl.serialization as serialization
from tinydl.data import DataLoader, Dataset, TensorDataset
from tinydl.data import transforms as T
from tinydl.tensor import Tensor


def index_dataset(count):
    """Sample i is (float features [i, i], label i): the batch tells which samples it holds."""
    features = np.repeat(np.arange(count, dtype=np.float64)[:, None], 2, axis=1)
    return TensorDataset(features, np.arange(count, dtype=np.uint8 if count <= 256 else np.int32))


def labels_of(loader):
    return [batch[1].numpy().tolist() for batch in loader]


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "tinydl-prefetch"]


@settings(max_examples=40, deadline=None)
@given(count=st.integers(0, 40), batch_size=st.integers(1, 12), drop_last=st.booleans(), shuffle=st.booleans(),
       prefetch=st.integers(0, 3))
def test_an_epoch_visits_every_sample_once_in_batches(count, batch_size, drop_last, shuffle, prefetch):
    loader = DataLoader(index_dataset(count), batch_size, shuffle=shuffle, drop_last=drop_last, seed=0,
                        prefetch=prefetch)
    batches = labels_of(loader)
    expected_batches = count // batch_size if drop_last else -(-count // batch_size)
    assert len(loader) == len(batches) == expected_batches
    assert all(len(b) == batch_size for b in batches[:-1])
    seen = [label for batch in batches for label in batch]
    if drop_last:
        assert len(seen) == (count // batch_size) * batch_size and len(set(seen)) == len(seen)
    else:
        assert sorted(seen) == list(range(count))
    if not shuffle:
        assert seen == list(range(len(seen)))


def test_batches_are_float32_and_int64_tensors():
    dataset = TensorDataset(np.zeros((5, 3), np.float64), np.arange(5, dtype=np.uint8), np.ones(5, bool))
    features, labels, mask = next(iter(DataLoader(dataset, batch_size=4)))
    assert isinstance(features, Tensor) and features.dtype == np.float32 and features.shape == (4, 3)
    assert labels.dtype == np.int64 and mask.dtype == np.bool_
    assert str(features.device) == "cpu"
    features, _, _ = next(iter(DataLoader(dataset, batch_size=4, device="cpu")))
    assert str(features.device) == "cpu"
    with pytest.raises(TypeError, match=r"DataLoader.*<U1.*\(2,\)"):
        next(iter(DataLoader(TensorDataset(np.array(["a", "b"])), batch_size=2)))


def test_shuffle_is_seeded_and_differs_between_epochs():
    loader = DataLoader(index_dataset(30), 10, shuffle=True, seed=7)
    first, second = labels_of(loader), labels_of(loader)
    assert first != second
    twin = DataLoader(index_dataset(30), 10, shuffle=True, seed=7)
    assert labels_of(twin) == first and labels_of(twin) == second
    assert labels_of(DataLoader(index_dataset(30), 10, shuffle=True, seed=8)) != first
    assert loader.epoch == 2


def test_batched_datasets_are_gathered_in_one_call():
    class Spy(Dataset):
        def __init__(self):
            self.calls = []

        def __len__(self):
            return 10

        def __getitem__(self, index):
            raise AssertionError("no per-sample access expected")

        def __getitems__(self, indices):
            self.calls.append(list(indices))
            return np.asarray(indices, np.float32)[:, None], np.asarray(indices)

    spy = Spy()
    assert sum(len(b) for b in labels_of(DataLoader(spy, 4, shuffle=True, seed=0))) == 10
    assert [len(c) for c in spy.calls] == [4, 4, 2]


def test_collate_fn_receives_the_list_of_samples():
    received = []

    def collate(samples):
        received.append(len(samples))
        return np.stack([s[0] for s in samples]), np.array([s[1] for s in samples]) * 10

    batches = labels_of(DataLoader(index_dataset(5), 2, collate_fn=collate))
    assert received == [2, 2, 1] and batches == [[0, 10], [20, 30], [40]]


def test_transform_applies_to_the_first_field_with_a_seeded_generator():
    images = np.random.default_rng(0).integers(0, 256, (20, 3, 6, 6), dtype=np.uint8)
    dataset = TensorDataset(images, np.arange(20))
    augment = T.Compose([T.RandomCrop(6, padding=2), T.RandomHorizontalFlip(), T.ToFloat()])

    def epoch(prefetch, seed=3):
        loader = DataLoader(dataset, 8, shuffle=True, seed=seed, transform=augment, prefetch=prefetch)
        return [(x.numpy(), y.numpy()) for x, y in loader]

    synchronous, background = epoch(0), epoch(2)
    for (xs, ys), (xb, yb) in zip(synchronous, background):
        np.testing.assert_array_equal(xs, xb)
        np.testing.assert_array_equal(ys, yb)
    assert synchronous[0][0].dtype == np.float32 and synchronous[0][0].shape == (8, 3, 6, 6)
    assert not np.array_equal(epoch(0, seed=4)[0][0], synchronous[0][0])


def take(iterator, count):
    return [next(iterator)[1].numpy().tolist() for _ in range(count)]


@pytest.mark.parametrize("prefetch", [0, 2])
def test_state_dict_resumes_mid_epoch_exactly(prefetch):
    images = np.random.default_rng(0).integers(0, 256, (50, 1, 4, 4), dtype=np.uint8)
    dataset = TensorDataset(images, np.arange(50))
    make = lambda: DataLoader(dataset, 8, shuffle=True, seed=11, transform=T.Compose(
        [T.RandomCrop(4, padding=1), T.ToFloat()]), prefetch=prefetch)

    reference = make()
    straight = [[(x.numpy(), y.numpy()) for x, y in reference] for _ in range(3)]

    original = make()
    labels_of(original)                         # epoch 0
    iterator = iter(original)
    take(iterator, 3)                           # three batches of epoch 1, more already prefetched
    state = original.state_dict()
    assert (state["epoch"], state["batches_done"]) == (1, 3)

    resumed = make()
    resumed.load_state_dict(state)
    rest_of_epoch_1 = [(x.numpy(), y.numpy()) for x, y in resumed]
    epoch_2 = [(x.numpy(), y.numpy()) for x, y in resumed]
    for got, want in zip(rest_of_epoch_1 + epoch_2, straight[1][3:] + straight[2]):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    assert len(rest_of_epoch_1) == len(straight[1]) - 3


def test_state_dict_survives_a_checkpoint_round_trip(tmp_path):
    loader = DataLoader(index_dataset(40), 6, shuffle=True, seed=None)
    labels_of(loader)
    serialization.save({"loader": loader.state_dict()}, tmp_path / "ckpt")
    expected = labels_of(loader)
    resumed = DataLoader(index_dataset(40), 6, shuffle=True, seed=123)
    resumed.load_state_dict(serialization.load(tmp_path / "ckpt")["loader"])
    assert labels_of(resumed) == expected


def test_load_state_dict_refuses_a_state_of_another_loader():
    state = DataLoader(index_dataset(40), 6, shuffle=True, seed=0).state_dict()
    with pytest.raises(ValueError, match="batch_size=6.*batch_size=5"):
        DataLoader(index_dataset(40), 5, shuffle=True).load_state_dict(state)
    with pytest.raises(ValueError, match="num_samples=40.*num_samples=41"):
        DataLoader(index_dataset(41), 6, shuffle=True).load_state_dict(state)
    with pytest.raises(KeyError, match="missing keys.*'generator'"):
        DataLoader(index_dataset(40), 6, shuffle=True).load_state_dict(
            {k: v for k, v in state.items() if k != "generator"})
    with pytest.raises(ValueError, match="invalid generator state"):
        DataLoader(index_dataset(40), 6, shuffle=True).load_state_dict({**state, "generator": {"x": 1}})


def test_an_abandoned_epoch_counts_as_done():
    loader = DataLoader(index_dataset(30), 5, shuffle=True, seed=1)
    twin = DataLoader(index_dataset(30), 5, shuffle=True, seed=1)
    labels_of(twin)
    for _ in loader:
        break
    assert loader.epoch == 1 and labels_of(loader) == labels_of(twin)


@pytest.mark.parametrize("prefetch", [0, 1, 3])
def test_worker_errors_are_reraised_with_their_traceback(prefetch):
    class Broken(Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, index):
            if index == 7:
                raise RuntimeError("sample 7 is unreadable")
            return np.zeros(2), index

    loader = DataLoader(Broken(), 4, prefetch=prefetch)
    with pytest.raises(RuntimeError, match="sample 7 is unreadable") as caught:
        labels_of(loader)
    frames = [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
    assert "__getitem__" in frames
    assert not prefetch_threads()


def test_breaking_out_early_stops_the_worker():
    before = len(prefetch_threads())
    loader = DataLoader(index_dataset(1000), 1, prefetch=2)   # the worker blocks on a full queue
    for _ in loader:
        break
    assert len(prefetch_threads()) == before
    iterator = iter(loader)
    next(iterator)
    assert len(prefetch_threads()) == before + 1
    del iterator
    assert len(prefetch_threads()) == before


def test_prefetch_overlaps_loading_with_compute():
    class Slow(Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, index):
            return np.zeros(1), index

        def __getitems__(self, indices):
            time.sleep(0.04)
            return np.zeros((len(indices), 1)), np.asarray(indices)

    def run(prefetch):
        start = time.perf_counter()
        for _ in DataLoader(Slow(), 1, prefetch=prefetch):
            time.sleep(0.04)
        return time.perf_counter() - start

    serial, overlapped = run(0), run(2)
    assert serial > 0.6 and overlapped < 0.75 * serial


def test_constructor_errors_name_the_argument():
    with pytest.raises(ValueError, match="batch_size.*0"):
        DataLoader(index_dataset(3), 0)
    with pytest.raises(ValueError, match="prefetch.*-1"):
        DataLoader(index_dataset(3), prefetch=-1)
    with pytest.raises(TypeError, match="__len__"):
        DataLoader(object())


def test_each_batch_and_epoch_gets_fresh_augmentation():
    image = np.random.default_rng(0).integers(0, 256, (1, 1, 6, 6), dtype=np.uint8)
    dataset = TensorDataset(np.repeat(image, 32, axis=0), np.zeros(32, np.int64))
    loader = DataLoader(dataset, 16, seed=0, transform=T.RandomCrop(6, padding=2))
    first, second = [[x.numpy() for x, _ in loader] for _ in range(2)]
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(first[0], second[0])


def test_a_cuda_device_without_a_gpu_is_a_clear_error():
    from tinydl.backend import is_available
    if is_available("cuda"):
        x, y = next(iter(DataLoader(index_dataset(4), 2, device="cuda")))
        assert str(x.device) == "cuda:0" and x.dtype == np.float32 and y.dtype == np.int64
        return
    with pytest.raises(RuntimeError, match="cuda.*CuPy|CuPy.*cuda"):
        next(iter(DataLoader(index_dataset(4), 2, device="cuda")))
