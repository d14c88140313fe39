"""Catalogue entry for dropout where it is deterministic: evaluation mode and p = 0 (the identity). The random
training mode is tested statistically and against its mask in tests/functional/test_dropout.py."""
from hypothesis import strategies as st

import tinydl.functional as F
from tinydl.testing import Case, OpSpec, arrays


@st.composite
def identity_case(draw):
    training = draw(st.booleans())
    p = 0.0 if training else draw(st.floats(0.0, 1.0))
    return Case((draw(arrays()),), {"p": p, "training": training})


SPECS = [
    OpSpec("dropout", F.dropout, identity_case(), lambda x, p, training: x.copy()),
]
