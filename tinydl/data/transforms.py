"""Batch transforms: NumPy functions of a whole NCHW image batch and a random generator.

Every transform is called as ``transform(images, rng)`` where ``images`` has shape ``(N, C, H, W)`` and ``rng`` is
a ``numpy.random.Generator``. Transforms that draw random numbers draw them only from ``rng``, so the DataLoader
(which hands each batch its own seeded generator) makes augmentation reproducible. Each transform works on the
whole batch at once: no Python loop over images.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _check_batch(images: np.ndarray, owner: str) -> None:
    if not isinstance(images, np.ndarray) or images.ndim != 4:
        raise ValueError(f"{owner}: expected a NumPy image batch of shape (N, C, H, W), got "
                         f"{type(images).__name__} of shape {getattr(images, 'shape', None)}")


class Transform:
    """Base class: ``__call__(images, rng) -> images``."""

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(images, rng)")

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Compose(Transform):
    """Apply transforms one after the other, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for transform in self.transforms:
            images = transform(images, rng)
        return images


class ToFloat(Transform):
    """uint8 pixels in [0, 255] to float32 in [0, 1]: ``x / 255``."""

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_batch(images, "ToFloat")
        if images.dtype != np.uint8:
            raise TypeError(f"ToFloat: expected uint8 pixels, got dtype {images.dtype}")
        return images.astype(np.float32) * np.float32(1 / 255)


class Normalize(Transform):
    """Per-channel standardisation: ``(x[:, c] - mean[c]) / std[c]``, in the input's float dtype."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) != len(self.std):
            raise ValueError(f"Normalize: mean has {len(self.mean)} values but std has {len(self.std)}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"Normalize: std must be positive, got {self.std}")

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_batch(images, "Normalize")
        if not np.issubdtype(images.dtype, np.floating):
            raise TypeError(f"Normalize: expected float images, got dtype {images.dtype} (apply ToFloat first)")
        if images.shape[1] != len(self.mean):
            raise ValueError(f"Normalize: images have {images.shape[1]} channels (shape {images.shape}) but "
                             f"mean/std have {len(self.mean)}")
        mean = np.asarray(self.mean, dtype=images.dtype).reshape(1, -1, 1, 1)
        inverse_std = (1 / np.asarray(self.std, dtype=images.dtype)).reshape(1, -1, 1, 1)
        normalized = images - mean
        normalized *= inverse_std
        return normalized


class RandomCrop(Transform):
    """Zero-pad each side by ``padding`` and cut a ``size`` window at an independent random offset per image.

    With padded batch ``P`` and offsets ``(i_n, j_n)`` drawn uniformly from ``[0, H + 2p - h]`` x
    ``[0, W + 2p - w]``: ``out[n, c, y, x] = P[n, c, i_n + y, j_n + x]``. All crops are gathered in one
    fancy-indexing call on a strided view of the windows.
    """

    def __init__(self, size: int | tuple[int, int], padding: int = 0) -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.padding = padding
        if len(self.size) != 2 or min(self.size) <= 0:
            raise ValueError(f"RandomCrop: size must be a positive int or (height, width), got {size!r}")
        if padding < 0:
            raise ValueError(f"RandomCrop: padding must be >= 0, got {padding}")

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_batch(images, "RandomCrop")
        padded = self._pad(images)
        (height, width), (crop_h, crop_w) = padded.shape[2:], self.size
        if crop_h > height or crop_w > width:
            raise ValueError(f"RandomCrop: crop size {self.size} is larger than the padded images "
                             f"({height}, {width}) (input shape {images.shape}, padding {self.padding})")
        count = images.shape[0]
        top = rng.integers(0, height - crop_h + 1, size=count)
        left = rng.integers(0, width - crop_w + 1, size=count)
        windows = np.lib.stride_tricks.sliding_window_view(padded, (crop_h, crop_w), axis=(2, 3))
        return windows[np.arange(count), :, top, left]

    def _pad(self, images: np.ndarray) -> np.ndarray:
        """Zero border of ``padding`` pixels (a zeroed buffer and one copy: several times faster than np.pad)."""
        p = self.padding
        if p == 0:
            return images
        count, channels, height, width = images.shape
        padded = np.zeros((count, channels, height + 2 * p, width + 2 * p), dtype=images.dtype)
        padded[:, :, p:p + height, p:p + width] = images
        return padded


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``, independently per image."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_batch(images, "RandomHorizontalFlip")
        flip = rng.random(images.shape[0]) < self.p
        flipped = images.copy()
        flipped[flip] = images[flip, ..., ::-1]
        return flipped
