"""Batch transforms, against per-image reference loops."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinydl.data import transforms as T


def random_images(rng, shape=(16, 3, 8, 8)):
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def test_to_float_scales_uint8_to_unit_float32():
    images = random_images(np.random.default_rng(0))
    out = T.ToFloat()(images, np.random.default_rng(0))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, images.astype(np.float64) / 255, rtol=1e-6)
    with pytest.raises(TypeError, match=r"ToFloat.*float32"):
        T.ToFloat()(out, np.random.default_rng(0))


def test_normalize_matches_a_per_channel_loop_and_keeps_float32():
    images = np.random.default_rng(1).random((5, 3, 4, 4), dtype=np.float32)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    out = T.Normalize(mean, std)(images, np.random.default_rng(0))
    assert out.dtype == np.float32
    for c in range(3):
        np.testing.assert_allclose(out[:, c], (images[:, c].astype(np.float64) - mean[c]) / std[c],
                                   rtol=1e-5, atol=1e-6)


def test_normalize_errors_name_the_shapes_and_dtypes():
    with pytest.raises(ValueError, match=r"Normalize.*4 channels.*\(2, 4, 3, 3\).*3"):
        T.Normalize((0, 0, 0), (1, 1, 1))(np.zeros((2, 4, 3, 3), np.float32), np.random.default_rng(0))
    with pytest.raises(TypeError, match=r"Normalize.*uint8.*ToFloat"):
        T.Normalize((0,), (1,))(np.zeros((2, 1, 3, 3), np.uint8), np.random.default_rng(0))
    with pytest.raises(ValueError, match="positive"):
        T.Normalize((0,), (0,))
    with pytest.raises(ValueError, match="mean has 2 values but std has 1"):
        T.Normalize((0, 0), (1,))
    with pytest.raises(ValueError, match=r"Normalize.*\(N, C, H, W\).*\(3, 3\)"):
        T.Normalize((0,), (1,))(np.zeros((3, 3), np.float32), np.random.default_rng(0))


def crop_offsets(images, out, padding):
    """For each image, the offsets (top, left) of the padded image's window equal to the output (naive loop)."""
    p = padding
    padded = np.pad(images, ((0, 0), (0, 0), (p, p), (p, p)))
    h, w = out.shape[2:]
    offsets = []
    for n in range(len(images)):
        matches = [(i, j) for i in range(padded.shape[2] - h + 1) for j in range(padded.shape[3] - w + 1)
                   if np.array_equal(padded[n, :, i:i + h, j:j + w], out[n])]
        assert matches, f"image {n} is not a crop of its padded input"
        offsets.append(matches[0])
    return offsets


@settings(max_examples=30, deadline=None)
@given(height=st.integers(1, 7), width=st.integers(1, 7), padding=st.integers(0, 3), data=st.data())
def test_random_crop_output_is_a_window_of_the_zero_padded_image(height, width, padding, data):
    crop = (data.draw(st.integers(1, height + 2 * padding)), data.draw(st.integers(1, width + 2 * padding)))
    images = random_images(np.random.default_rng(0), (4, 2, height, width))
    out = T.RandomCrop(crop, padding)(images, np.random.default_rng(data.draw(st.integers(0, 100))))
    assert out.shape == (4, 2, *crop) and out.dtype == images.dtype
    crop_offsets(images, out, padding)


def test_random_crop_offsets_are_independent_and_cover_every_position():
    images = random_images(np.random.default_rng(2), (600, 3, 6, 6))
    out = T.RandomCrop(6, padding=1)(images, np.random.default_rng(3))
    offsets = crop_offsets(images, out, padding=1)
    assert set(offsets) == {(i, j) for i in range(3) for j in range(3)}


def test_random_crop_is_reproducible_from_the_generator():
    images = random_images(np.random.default_rng(4))
    crop = T.RandomCrop(8, padding=2)
    np.testing.assert_array_equal(crop(images, np.random.default_rng(5)), crop(images, np.random.default_rng(5)))
    assert not np.array_equal(crop(images, np.random.default_rng(5)), crop(images, np.random.default_rng(6)))
    with pytest.raises(ValueError, match=r"RandomCrop.*\(13, 13\).*larger.*\(12, 12\)"):
        T.RandomCrop(13, padding=2)(images, np.random.default_rng(0))


def test_random_horizontal_flip_mirrors_a_random_subset_per_image():
    images = random_images(np.random.default_rng(6), (400, 3, 4, 5))
    out = T.RandomHorizontalFlip(p=0.3)(images, np.random.default_rng(7))
    flipped = [np.array_equal(o, i[..., ::-1]) for o, i in zip(out, images)]
    kept = [np.array_equal(o, i) for o, i in zip(out, images)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 0.2 < np.mean(flipped) < 0.4
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0)(images, np.random.default_rng(0)), images)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(images, np.random.default_rng(0)), images[..., ::-1])
    with pytest.raises(ValueError, match=r"RandomHorizontalFlip.*1.5"):
        T.RandomHorizontalFlip(1.5)


def test_compose_applies_in_order_with_one_generator():
    images = random_images(np.random.default_rng(8))
    pipeline = T.Compose([T.RandomCrop(8, padding=1), T.RandomHorizontalFlip(), T.ToFloat(),
                          T.Normalize((0.5,) * 3, (0.25,) * 3)])
    out = pipeline(images, np.random.default_rng(9))
    rng = np.random.default_rng(9)
    expected = T.RandomHorizontalFlip()(T.RandomCrop(8, padding=1)(images, rng), rng)
    expected = (expected.astype(np.float32) / 255 - 0.5) / 0.25
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert "RandomCrop" in repr(pipeline)
