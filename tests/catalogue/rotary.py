"""Catalogue entry for apply_rotary. The reference rotates each feature pair (i, i + D/2) by a 2 x 2 rotation
matrix, one pair at a time."""
import numpy as np
from hypothesis import strategies as st

import tinydl.functional as F
from tinydl.testing import Case, OpSpec, arrays


@st.composite
def rotary_case(draw):
    """x (..., T, D) with D even; cos and sin of the angles of shape (T, D) (each half repeated, as RoPE builds
    them) or, now and then, arbitrary values of a broadcastable shape (the op's maths does not need them to be
    a cosine and a sine)."""
    batch = draw(st.sampled_from([(), (2,), (2, 3)]))
    length, half = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    x = draw(arrays(batch + (length, 2 * half)))
    if draw(st.booleans()):
        angles = draw(arrays((length, half), low=-4.0, high=4.0))
        angles = np.concatenate([angles, angles], axis=-1)
        cos, sin = np.cos(angles), np.sin(angles)
    else:
        shape = draw(st.sampled_from([(length, 2 * half), (1, 2 * half)]))
        cos, sin = draw(arrays(shape, low=-1.0, high=1.0)), draw(arrays(shape, low=-1.0, high=1.0))
    return Case((x, cos, sin))


def rotary_reference(x, cos, sin):
    half = x.shape[-1] // 2
    cos, sin = np.broadcast_to(cos, x.shape), np.broadcast_to(sin, x.shape)
    y = np.empty_like(x)
    for i in range(half):
        j = i + half
        # the pair (x_i, x_j) times [[cos_i, -sin_i], [sin_j, cos_j]] (the same matrix when cos_i = cos_j, ...)
        y[..., i] = x[..., i] * cos[..., i] - x[..., j] * sin[..., i]
        y[..., j] = x[..., j] * cos[..., j] + x[..., i] * sin[..., j]
    return y


SPECS = [
    OpSpec("apply_rotary", F.apply_rotary, rotary_case(), rotary_reference),
]
