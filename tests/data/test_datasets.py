"""CIFAR-10 and (Fashion-)MNIST readers, on tiny files written here in the official formats."""
import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from tinydl.data import CIFAR10, MNIST, FashionMNIST
from tinydl.data.safe_pickle import RefusedPickleError, safe_loads

RECORD = 3073


def cifar_split(rng, count):
    return rng.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, count).astype(np.int64)


def write_cifar_binary(root, splits):
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for name, (images, labels) in splits.items():
        records = np.concatenate([labels.astype(np.uint8)[:, None], images.reshape(len(images), -1)], axis=1)
        (folder / f"{name}.bin").write_bytes(records.tobytes())
    return folder


class Python2Pickler(pickle._Pickler):
    """Writes ``str`` and ``bytes`` as Python 2 byte strings (BINSTRING), as the official CIFAR pickles have them."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_string(self, value):
        raw = value.encode("latin1") if isinstance(value, str) else value
        self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw if len(raw) < 256
                   else pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(value)

    dispatch[str] = save_py2_string
    dispatch[bytes] = save_py2_string


def python2_pickle(value):
    stream = io.BytesIO()
    Python2Pickler(stream, protocol=2).dump(value)
    return stream.getvalue()


def write_cifar_python(root, splits, dump):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, (images, labels) in splits.items():
        batch = {b"batch_label": b"a batch", b"labels": labels.tolist(), b"data": images.reshape(len(images), -1),
                 b"filenames": [b"x.png"] * len(labels)}
        (folder / name).write_bytes(dump(batch))
    return folder


def six_files(rng, sizes=(3, 2, 2, 1, 2, 4)):
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return {name: cifar_split(rng, size) for name, size in zip(names, sizes)}


def expected(splits, train):
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    return np.concatenate([splits[n][0] for n in names]), np.concatenate([splits[n][1] for n in names])


@pytest.mark.parametrize("layout", ["binary", "python2", "protocol2", "protocol5"])
@pytest.mark.parametrize("train", [True, False])
def test_cifar10_reads_both_official_layouts(tmp_path, layout, train):
    splits = six_files(np.random.default_rng(0))
    if layout == "binary":
        write_cifar_binary(tmp_path, splits)
    else:
        dump = {"python2": python2_pickle, "protocol2": lambda v: pickle.dumps(v, protocol=2),
                "protocol5": lambda v: pickle.dumps(v, protocol=5)}[layout]
        write_cifar_python(tmp_path, splits, dump)
    dataset = CIFAR10(tmp_path, train=train)
    images, labels = expected(splits, train)
    assert dataset.data.dtype == np.uint8 and dataset.data.shape == (len(labels), 3, 32, 32)
    assert dataset.targets.dtype == np.int64
    np.testing.assert_array_equal(dataset.data, images)
    np.testing.assert_array_equal(dataset.targets, labels)
    assert len(dataset) == len(labels) and dataset.classes[0] == "airplane" and len(dataset.classes) == 10
    image, label = dataset[1]
    np.testing.assert_array_equal(image, images[1])
    batch_images, batch_labels = dataset.__getitems__(np.array([2, 0]))
    np.testing.assert_array_equal(batch_images, images[[2, 0]])


def test_cifar10_binary_pixel_order_is_channel_planes(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    record = np.zeros(RECORD, np.uint8)
    record[0] = 7
    record[1 + 1024 + 32 * 2 + 5] = 200            # green plane, row 2, column 5
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (folder / name).write_bytes(record.tobytes())
    dataset = CIFAR10(tmp_path, train=False)
    assert dataset.targets.tolist() == [7]
    assert dataset.data[0, 1, 2, 5] == 200 and dataset.data.sum() == 200


def test_a_truncated_cifar_file_names_the_file_and_both_sizes(tmp_path):
    folder = write_cifar_binary(tmp_path, six_files(np.random.default_rng(1)))
    path = folder / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-100])
    found = 2 * RECORD - 100
    with pytest.raises(ValueError, match=rf"data_batch_3\.bin.*truncated.*{RECORD} or {2 * RECORD} bytes.*"
                                         rf"found {found} bytes"):
        CIFAR10(tmp_path)
    CIFAR10(tmp_path, train=False)                  # the test split does not need that file


def test_a_truncated_cifar_pickle_names_the_file(tmp_path):
    folder = write_cifar_python(tmp_path, six_files(np.random.default_rng(2)), lambda v: pickle.dumps(v, 2))
    path = folder / "test_batch"
    size = len(path.read_bytes()) // 2
    path.write_bytes(path.read_bytes()[:size])
    with pytest.raises(ValueError, match=rf"test_batch \({size} bytes\).*truncated"):
        CIFAR10(tmp_path, train=False)


class CreatesAFile:
    """Unpickling an instance calls open(path, "w"): a stand-in for arbitrary code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_malicious_cifar_pickle_executes_nothing(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": CreatesAFile(marker)}, protocol=2))
    with pytest.raises(ValueError, match=r"test_batch.*refused unread: refusing to load global (builtins|io)\.open"):
        CIFAR10(tmp_path, train=False)
    assert not marker.exists()
    pickle.loads((folder / "test_batch").read_bytes())[b"data"].close()   # the plain unpickler does run it
    assert marker.exists()


@pytest.mark.parametrize("payload", [
    pickle.dumps(np.array([object()], dtype=object)),
    pickle.dumps({"x": np.dtype}),
    pickle.dumps(b"x", protocol=2).replace(b"latin1", b"rot_13"),
])
def test_the_restricted_unpickler_refuses_anything_but_numeric_arrays(payload):
    with pytest.raises(RefusedPickleError):
        safe_loads(payload)


def test_cifar10_errors_for_missing_and_incomplete_datasets(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"CIFAR10: no dataset found in directory {tmp_path}.*"
                                                r"cifar-10-batches-bin.*download=True.*make_cifar10_bin\.py"):
        CIFAR10(tmp_path)
    folder = write_cifar_binary(tmp_path, six_files(np.random.default_rng(3)))
    (folder / "data_batch_4.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"incomplete.*data_batch_4\.bin"):
        CIFAR10(tmp_path)
    (folder / "data_batch_4.bin").write_bytes(bytes([10]) + bytes(RECORD - 1))
    with pytest.raises(ValueError, match=r"data_batch_4\.bin holds label 10"):
        CIFAR10(tmp_path)


def make_archive(tmp_path, members):
    """A .tar.gz of {name: bytes} and its MD5."""
    archive = tmp_path / "served" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()


def test_cifar10_download_checks_the_checksum_and_unpacks(tmp_path, monkeypatch):
    splits = six_files(np.random.default_rng(4))
    source = write_cifar_binary(tmp_path / "source", splits)
    archive, md5 = make_archive(tmp_path, {f"cifar-10-batches-bin/{p.name}": p.read_bytes()
                                           for p in source.iterdir()})
    root = tmp_path / "root"
    monkeypatch.setattr(CIFAR10, "archive_url", archive.as_uri())
    monkeypatch.setattr(CIFAR10, "archive_md5", "0" * 32)
    with pytest.raises(ValueError, match=rf"checksum mismatch, expected MD5 0{{32}}, got {md5}"):
        CIFAR10(root, download=True)
    assert list(root.iterdir()) == []
    monkeypatch.setattr(CIFAR10, "archive_md5", md5)
    np.testing.assert_array_equal(CIFAR10(root, train=False, download=True).targets, splits["test_batch"][1])
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-bin"]


def test_cifar10_download_refuses_members_outside_the_root(tmp_path, monkeypatch):
    archive, md5 = make_archive(tmp_path, {"../escaped.bin": b"x"})
    monkeypatch.setattr(CIFAR10, "archive_url", archive.as_uri())
    monkeypatch.setattr(CIFAR10, "archive_md5", md5)
    (tmp_path / "root").mkdir()
    with pytest.raises(ValueError, match=r"refusing member '\.\./escaped\.bin'"):
        CIFAR10(tmp_path / "root", download=True)
    assert not (tmp_path / "escaped.bin").exists()


def test_offline_download_is_a_file_not_found_error(tmp_path, monkeypatch):
    monkeypatch.setattr(CIFAR10, "archive_url", (tmp_path / "nowhere.tar.gz").as_uri())
    with pytest.raises(FileNotFoundError, match=r"download failed.*nowhere\.tar\.gz"):
        CIFAR10(tmp_path, download=True)


def idx_bytes(array):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx_split(folder, prefix, images, labels, compress):
    folder.mkdir(parents=True, exist_ok=True)
    for kind, array, dims in (("images", images, 3), ("labels", labels, 1)):
        data = idx_bytes(array)
        name = f"{prefix}-{kind}-idx{dims}-ubyte"
        if compress:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


def mnist_split(rng, count):
    return rng.integers(0, 256, (count, 28, 28), dtype=np.uint8), rng.integers(0, 10, count).astype(np.uint8)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("cls", [MNIST, FashionMNIST])
def test_mnist_reads_idx_files_plain_or_gzipped(tmp_path, cls, compress):
    rng = np.random.default_rng(5)
    train, test = mnist_split(rng, 5), mnist_split(rng, 3)
    write_idx_split(tmp_path, "train", *train, compress)
    write_idx_split(tmp_path, "t10k", *test, compress)
    for split, (images, labels) in ((True, train), (False, test)):
        dataset = cls(tmp_path, train=split)
        assert dataset.data.shape == (len(labels), 1, 28, 28) and dataset.data.dtype == np.uint8
        np.testing.assert_array_equal(dataset.data[:, 0], images)
        np.testing.assert_array_equal(dataset.targets, labels.astype(np.int64))
        assert dataset.targets.dtype == np.int64
    assert FashionMNIST.classes[0] == "T-shirt/top" and MNIST.classes[3] == "3"


def test_mnist_finds_the_torchvision_layout(tmp_path):
    write_idx_split(tmp_path / "FashionMNIST" / "raw", "t10k", *mnist_split(np.random.default_rng(6), 2), True)
    assert len(FashionMNIST(tmp_path, train=False)) == 2
    with pytest.raises(FileNotFoundError, match=rf"MNIST: no dataset found in directory {tmp_path}.*"
                                                r"MNIST/raw/t10k-images-idx3-ubyte.*download=True"):
        MNIST(tmp_path, train=False)


@pytest.mark.parametrize("compress", [False, True])
def test_a_truncated_idx_file_names_the_file_and_both_sizes(tmp_path, compress):
    images, labels = mnist_split(np.random.default_rng(7), 4)
    data = idx_bytes(images)[:-50]
    name = "t10k-images-idx3-ubyte" + (".gz" if compress else "")
    (tmp_path / name).write_bytes(gzip.compress(data) if compress else data)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    expected_size = 16 + 4 * 28 * 28
    with pytest.raises(ValueError, match=rf"{name}.*expected {expected_size} bytes.*found {expected_size - 50}"):
        MNIST(tmp_path, train=False)
    if compress:
        (tmp_path / name).write_bytes(gzip.compress(idx_bytes(images))[:-30])
        with pytest.raises(ValueError, match=rf"{name} is truncated or corrupt"):
            MNIST(tmp_path, train=False)


def test_idx_errors_for_bad_magic_and_mismatched_counts(tmp_path):
    images, labels = mnist_split(np.random.default_rng(8), 4)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x1f\x8b" + idx_bytes(images)[2:])
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels[:3]))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte is not an IDX file"):
        MNIST(tmp_path, train=False)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(images))
    with pytest.raises(ValueError, match=r"MNIST.*\(4, 28, 28\).*\(3,\)"):
        MNIST(tmp_path, train=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([1, 2, 3, 12], np.uint8)))
    with pytest.raises(ValueError, match=r"label 12"):
        MNIST(tmp_path, train=False)


def test_mnist_download_puts_checked_files_in_the_torchvision_layout(tmp_path, monkeypatch):
    served = tmp_path / "served"
    write_idx_split(served, "t10k", *mnist_split(np.random.default_rng(9), 3), True)
    checksums = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in served.iterdir()}
    monkeypatch.setattr(MNIST, "base_url", served.as_uri() + "/")
    monkeypatch.setattr(MNIST, "archive_md5", checksums)
    dataset = MNIST(tmp_path / "root", train=False, download=True)
    assert len(dataset) == 3
    assert sorted(os.listdir(tmp_path / "root" / "MNIST" / "raw")) == sorted(checksums)
