"""im2col against its definition, col2im as its exact adjoint, and the chunking policy of the backend seam."""
import itertools
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinydl.kernels import chunking
from tinydl.kernels.chunking import batch_chunks
from tinydl.kernels.geometry import Conv2dGeometry
from tinydl.kernels.im2col import col2im, im2col, pad_channels_last, spare_rows


@st.composite
def geometries(draw):
    """A padded channels-last input and a geometry whose kernel fits it."""
    groups = draw(st.integers(1, 3))
    channels = groups * draw(st.integers(1, 2))
    kernel = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dilation = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    padding = (draw(st.integers(0, 2)),) * 2, (draw(st.integers(0, 2)),) * 2
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    sides = [draw(st.integers(max(1, span - sum(pad)), 7)) for span, pad in zip(spans, padding)]
    geometry = Conv2dGeometry(stride, padding, dilation, groups)
    return (draw(st.integers(1, 3)), channels, *sides), kernel, geometry


def cols_shape(input_shape, kernel, geometry):
    out_h, out_w = geometry.output_size(input_shape[2], input_shape[3], kernel)
    groups = geometry.groups
    return (input_shape[0], out_h, out_w, groups, *kernel, input_shape[1] // groups)


def padded(x, geometry):
    height, width = geometry.padded_size(*x.shape[2:])
    out = np.zeros((x.shape[0], height + spare_rows(geometry), width, x.shape[1]))
    return pad_channels_last(x, geometry, out)


@settings(max_examples=60, deadline=None)
@given(geometries(), st.randoms())
def test_im2col_copies_every_patch_entry_from_its_definition(case, random):
    input_shape, kernel, geometry = case
    x = np.random.default_rng(random.randint(0, 2**32)).standard_normal(input_shape)
    source = padded(x, geometry)
    cols = im2col(source, geometry, np.empty(cols_shape(input_shape, kernel, geometry)))
    (sh, sw), (dh, dw) = geometry.stride, geometry.dilation
    per_group = cols.shape[-1]
    for index in itertools.product(*(range(n) for n in cols.shape)):
        b, oh, ow, g, i, j, c = index
        assert cols[index] == source[b, oh * sh + i * dh, ow * sw + j * dw, g * per_group + c]


@settings(max_examples=60, deadline=None)
@given(geometries(), st.randoms())
def test_col2im_is_the_adjoint_of_im2col(case, random):
    """<im2col(x), c> = <x, col2im(c)> for every x and c: the dot-product test of a transpose."""
    input_shape, kernel, geometry = case
    rng = np.random.default_rng(random.randint(0, 2**32))
    height, width = geometry.padded_size(*input_shape[2:])
    x = rng.standard_normal((input_shape[0], height + spare_rows(geometry), width, input_shape[1]))
    shape = cols_shape(input_shape, kernel, geometry)
    c = rng.standard_normal(shape)
    left = np.vdot(im2col(x, geometry, np.empty(shape)), c)
    right = np.vdot(x, col2im(c, geometry, np.full(x.shape, np.nan)))  # col2im overwrites, stale values vanish
    assert left == pytest.approx(right, rel=1e-12, abs=1e-12)


def test_padding_goes_to_the_border_and_channels_last():
    x = np.arange(2 * 3 * 2 * 2, dtype=np.float64).reshape(2, 3, 2, 2)
    geometry = Conv2dGeometry(padding=((1, 0), (0, 2)))  # stride 1: one spare row
    out = padded(x, geometry)
    assert out.shape == (2, 4, 4, 3)
    np.testing.assert_array_equal(out[:, 1:3, :2, :], x.transpose(0, 2, 3, 1))
    assert not out[:, 0].any() and not out[:, 3].any() and not out[:, :, 2:].any()


@pytest.mark.parametrize("batch, image_bytes", [(64, 1), (64, 10**6), (5, chunking.CPU_CHUNK_BYTES), (1, 10**12),
                                                (0, 100)])
def test_cpu_chunks_cover_the_batch_in_order_within_the_budget(batch, image_bytes):
    parts = list(batch_chunks(batch, image_bytes, np))
    covered = [i for part in parts for i in range(part.start, part.stop)]
    assert covered == list(range(batch))
    for part in parts:
        assert part.stop - part.start == 1 or (part.stop - part.start) * image_bytes <= chunking.CPU_CHUNK_BYTES


def test_a_gpu_backend_gets_the_whole_batch_as_one_chunk():
    cupy_like = types.SimpleNamespace(__name__="cupy")
    assert list(batch_chunks(64, 10**9, cupy_like)) == [slice(0, 64)]


def test_col2im_refuses_an_output_it_cannot_address_as_flat_rows():
    geometry = Conv2dGeometry()
    cols = np.zeros((1, 2, 2, 1, 2, 2, 3))
    out = np.zeros((1, 4, 3, 3, 2))[..., 0]     # (1, 4, 3, 3) but not contiguous
    with pytest.raises(ValueError, match="col2im: out must be C-contiguous"):
        col2im(cols, geometry, out)
