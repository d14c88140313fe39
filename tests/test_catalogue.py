"""Run every catalogue entry through the property runner, and check that every public op has an entry."""
import os

import pytest

import tinydl.functional as F
from tinydl.testing import check_op

from catalogue import all_specs

SPECS = all_specs()
# HYPOTHESIS_PROFILE=ci-long multiplies the examples drawn per entry
EXAMPLES_FACTOR = 8 if os.environ.get("HYPOTHESIS_PROFILE") == "ci-long" else 1


@pytest.mark.parametrize("spec", SPECS, ids=[f"{s.name}-{i}" for i, s in enumerate(SPECS)])
def test_op_properties(spec):
    check_op(spec, max_examples=spec.max_examples * EXAMPLES_FACTOR)


def test_every_public_op_has_a_catalogue_entry():
    covered = {spec.name for spec in SPECS}
    missing = sorted(set(F.__all__) - covered)
    assert not missing, f"public ops of tinydl.functional without a catalogue entry: {missing}"


def test_catalogue_names_are_public_ops():
    unknown = sorted({spec.name for spec in SPECS} - set(F.__all__))
    assert not unknown, f"catalogue entries for names that tinydl.functional does not export: {unknown}"
