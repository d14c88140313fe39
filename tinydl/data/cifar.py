"""CIFAR-10: 60,000 colour images of 32x32 pixels in 10 classes, from the official binary or python layout.

Binary layout (``root/cifar-10-batches-bin``): ``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin``,
each a sequence of 3073-byte records: one label byte, then 1024 red, 1024 green and 1024 blue pixel bytes (rows
top to bottom), which is exactly one CHW image. Python layout (``root/cifar-10-batches-py``): ``data_batch_1`` ..
``data_batch_5`` and ``test_batch``, pickled dicts whose ``b"data"`` is a uint8 array of shape (N, 3072) in the
same pixel order and whose ``b"labels"`` is a list of N ints; they are read with the restricted unpickler.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from .dataset import Dataset, check_index, check_indices
from .files import download, extract_tar, missing_dataset, read_bytes
from .safe_pickle import RefusedPickleError, safe_loads

_IMAGE_SHAPE = (3, 32, 32)
_IMAGE_BYTES = 3 * 32 * 32
_RECORD_BYTES = 1 + _IMAGE_BYTES


def _check_labels(labels: np.ndarray, count: int, path: Path) -> None:
    bad = labels[(labels < 0) | (labels >= count)]
    if bad.size:
        raise ValueError(f"CIFAR10: {path} holds label {int(bad[0])}, outside [0, {count})")


def read_binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one file of the binary layout."""
    raw = np.frombuffer(read_bytes(path, "CIFAR10"), dtype=np.uint8)
    if raw.size == 0 or raw.size % _RECORD_BYTES:
        whole = raw.size // _RECORD_BYTES
        raise ValueError(f"CIFAR10: {path} is truncated or corrupt: expected a whole number of {_RECORD_BYTES}-byte "
                         f"records ({max(whole, 1) * _RECORD_BYTES} or {(whole + 1) * _RECORD_BYTES} bytes; "
                         f"an official file has 10000 records = {10000 * _RECORD_BYTES} bytes), found {raw.size} bytes")
    records = raw.reshape(-1, _RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    _check_labels(labels, len(CIFAR10.classes), path)
    return records[:, 1:].reshape(-1, *_IMAGE_SHAPE), labels


def read_python_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one pickled batch of the python layout."""
    payload = read_bytes(path, "CIFAR10")
    try:
        batch = safe_loads(payload)
    except RefusedPickleError as error:
        raise ValueError(f"CIFAR10: {path} is not a plain CIFAR-10 batch and was refused unread: {error}") from error
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError) as error:
        raise ValueError(f"CIFAR10: cannot read {path} ({len(payload)} bytes): truncated, corrupt or not a "
                         f"CIFAR-10 batch: {error}") from error
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(b"labels") if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _IMAGE_BYTES:
        raise ValueError(f"CIFAR10: {path} is not a CIFAR-10 batch: expected b'data' to be a uint8 array of shape "
                         f"(N, {_IMAGE_BYTES}), found {getattr(data, 'dtype', type(data).__name__)} of shape "
                         f"{getattr(data, 'shape', None)}")
    labels = np.asarray(labels, dtype=np.int64) if isinstance(labels, list) else None
    if labels is None or labels.shape != (data.shape[0],):
        raise ValueError(f"CIFAR10: {path} is not a CIFAR-10 batch: expected b'labels' to be a list of "
                         f"{data.shape[0]} ints, found {None if labels is None else labels.shape[0]}")
    _check_labels(labels, len(CIFAR10.classes), path)
    return data.reshape(-1, *_IMAGE_SHAPE), labels


class CIFAR10(Dataset):
    """CIFAR-10 as arrays: ``data`` (N, 3, 32, 32) uint8, ``targets`` (N,) int64, ``classes`` (10 names).

    ``root`` is the directory that holds ``cifar-10-batches-bin`` (preferred) or ``cifar-10-batches-py``.
    ``download=True`` fetches the official binary archive (MD5-checked) into ``root`` when no layout is there.
    """

    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    archive_url = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    archive_md5 = "c32a1d4ab5d03f1284b67883e8d87530"
    layouts = {  # directory -> (train files, test files, reader)
        "cifar-10-batches-bin": ([f"data_batch_{i}.bin" for i in range(1, 6)], ["test_batch.bin"],
                                 read_binary_batch),
        "cifar-10-batches-py": ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], read_python_batch),
    }

    def __init__(self, root: str | os.PathLike, train: bool = True, download: bool = False) -> None:
        self.root = Path(root)
        self.train = train
        folder = self._find_layout()
        download_error = None
        if folder is None and download:
            try:
                self._download()
            except OSError as error:
                download_error = error
            folder = self._find_layout()
        if folder is None:
            raise missing_dataset("CIFAR10", self.root, [self.root / name for name in self.layouts],
                                  f"Call CIFAR10(root, download=True) when online, or unpack the official "
                                  f"cifar-10-binary.tar.gz into {self.root} (in the tinydl repository: "
                                  f"python3 ../shared/data/make_cifar10_bin.py {self.root}).", download_error)
        train_files, test_files, reader = self.layouts[folder]
        paths = [self.root / folder / name for name in (train_files if train else test_files)]
        absent = [str(p) for p in paths if not p.is_file()]
        if absent:
            raise FileNotFoundError(f"CIFAR10: {self.root / folder} is incomplete, missing {', '.join(absent)}")
        parts = [reader(path) for path in paths]
        self.data = np.concatenate([images for images, _ in parts])
        self.targets = np.concatenate([labels for _, labels in parts])

    def _find_layout(self) -> str | None:
        return next((name for name in self.layouts if (self.root / name).is_dir()), None)

    def _download(self) -> None:
        archive = download(self.archive_url, self.archive_md5, self.root / Path(self.archive_url).name)
        extract_tar(archive, self.root)
        archive.unlink()

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.int64]:
        position = check_index(index, len(self), "CIFAR10")
        return self.data[position], self.targets[position]

    def __getitems__(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        positions = check_indices(indices, len(self), "CIFAR10")
        return self.data[positions], self.targets[positions]

    def __repr__(self) -> str:
        return f"CIFAR10(root={str(self.root)!r}, train={self.train}, {len(self)} images)"
