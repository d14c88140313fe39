"""Every bad-input case of tests/errors/cases.py raises the expected exception with a message that names the op
(or module) and the offending shapes, dtypes, devices or values; and every public op and Module class has a case.
"""
import inspect
import re

import pytest

import tinydl.functional as F
from tinydl import nn

from .cases import CASES

PARAMS = [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
          for c in CASES]


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning")
@pytest.mark.parametrize("case", PARAMS)
def test_bad_input_gives_an_error_a_learner_can_act_on(case):
    with pytest.raises(case.exception) as info:
        case.provoke()
    message = str(info.value)
    missing = [p for p in case.patterns if not re.search(p, message, re.IGNORECASE)]
    assert not missing, f"{case.id}: message {message!r} lacks {missing}"


def public_modules() -> set[str]:
    return {name for name, value in vars(nn).items()
            if not name.startswith("_") and inspect.isclass(value) and issubclass(value, nn.Module)}


def test_every_public_op_and_module_has_a_bad_input_case():
    covered = {c.target for c in CASES}
    missing = sorted({f"F.{name}" for name in F.__all__} - covered) + sorted(
        {f"nn.{name}" for name in public_modules()} - covered)
    assert not missing, f"public ops/modules without a bad-input case in tests/errors/cases.py: {missing}"


# beyond the ops and modules: the in-place Tensor methods, backward's version check, and the checkpoint loader
OTHER_TARGETS = {"Tensor.add_", "Tensor.mul_", "Tensor.copy_", "Tensor.setitem", "Tensor.backward", "tinydl.load"}


def test_every_case_targets_a_public_name():
    public = {f"F.{name}" for name in F.__all__} | {f"nn.{name}" for name in public_modules()} | OTHER_TARGETS
    unknown = sorted({c.target for c in CASES} - public)
    assert not unknown, f"cases for names that are not public: {unknown}"
