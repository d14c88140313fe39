"""MNIST and Fashion-MNIST: 70,000 grey 28x28 images in 10 classes, from IDX files (plain or gzipped).

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), the dimensions as
big-endian 32-bit integers, then the values in C order. Images are ``*-images-idx3-ubyte`` (N, 28, 28) uint8 and
labels ``*-labels-idx1-ubyte`` (N,) uint8; the train split is ``train-*``, the test split ``t10k-*``.
"""
from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import numpy as np

from .dataset import Dataset, check_index, check_indices
from .files import download, missing_dataset, read_bytes

_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: Path) -> np.ndarray:
    """The array stored in an IDX file (native byte order, writable)."""
    payload = read_bytes(path, "IDX")
    if len(payload) < 4 or payload[:2] != b"\0\0" or payload[2] not in _IDX_TYPES:
        raise ValueError(f"IDX: {path} is not an IDX file (magic bytes {payload[:4].hex() or 'missing'})")
    dtype, ndim = _IDX_TYPES[payload[2]], payload[3]
    header = 4 + 4 * ndim
    if len(payload) < header:
        raise ValueError(f"IDX: {path} is truncated: expected a {header}-byte header, found {len(payload)} bytes")
    shape = struct.unpack(f">{ndim}I", payload[4:header])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(payload) != expected:
        raise ValueError(f"IDX: {path} is truncated or corrupt: expected {expected} bytes for {dtype} values of "
                         f"shape {shape}, found {len(payload)} bytes" + (" (after decompression)"
                                                                           if path.suffix == ".gz" else ""))
    return np.frombuffer(payload, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


class MNIST(Dataset):
    """MNIST as arrays: ``data`` (N, 1, 28, 28) uint8, ``targets`` (N,) int64, ``classes`` (10 names).

    The IDX files (plain or ``.gz``) are looked for in ``root`` and in ``root/<name>/raw`` (torchvision's layout,
    where ``download=True`` puts them, MD5-checked).
    """

    classes = [str(digit) for digit in range(10)]
    base_url = "https://ossci-datasets.s3.amazonaws.com/mnist/"
    archive_md5 = {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                   "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                   "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                   "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}

    def __init__(self, root: str | os.PathLike, train: bool = True, download: bool = False) -> None:
        self.root = Path(root)
        self.train = train
        prefix = "train" if train else "t10k"
        stems = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
        found = [self._find(stem) for stem in stems]
        download_error = None
        if None in found and download:
            try:
                for stem in stems:
                    self._fetch(stem + ".gz")
            except OSError as error:
                download_error = error
            found = [self._find(stem) for stem in stems]
        if None in found:
            looked_for = [folder / stem for folder in self._folders() for stem in stems]
            raise missing_dataset(type(self).__name__, self.root, looked_for,
                                  f"Call {type(self).__name__}(root, download=True) when online, or put the IDX "
                                  f"files (plain or .gz) in {self.root}.", download_error)
        images, labels = (read_idx(path) for path in found)
        if images.dtype != np.uint8 or images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise ValueError(f"{type(self).__name__}: expected uint8 images (N, H, W) and labels (N,), found "
                             f"{images.dtype} {images.shape} in {found[0]} and {labels.shape} in {found[1]}")
        bad = labels[(labels < 0) | (labels >= len(self.classes))]
        if bad.size:
            raise ValueError(f"{type(self).__name__}: {found[1]} holds label {int(bad[0])}, outside "
                             f"[0, {len(self.classes)})")
        self.data = images[:, None]
        self.targets = labels.astype(np.int64)

    def _folders(self) -> list[Path]:
        return [self.root, self.root / type(self).__name__ / "raw"]

    def _find(self, stem: str) -> Path | None:
        candidates = [folder / name for folder in self._folders() for name in (stem, stem + ".gz")]
        return next((path for path in candidates if path.is_file()), None)

    def _fetch(self, name: str) -> None:
        download(self.base_url + name, self.archive_md5[name], self._folders()[1] / name)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.int64]:
        position = check_index(index, len(self), type(self).__name__)
        return self.data[position], self.targets[position]

    def __getitems__(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        positions = check_indices(indices, len(self), type(self).__name__)
        return self.data[positions], self.targets[positions]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, train={self.train}, {len(self)} images)"


class FashionMNIST(MNIST):
    """Fashion-MNIST (Zalando's clothing images), same format and layout as MNIST.

    Debian's ``dataset-fashion-mnist`` package installs the files under ``/usr/share/datasets/fashion-mnist``.
    """

    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
    base_url = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    archive_md5 = {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                   "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                   "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                   "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}
