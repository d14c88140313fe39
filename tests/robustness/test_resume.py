"""Exact resume: N steps, checkpoint with tinydl.save, load in a fresh process, M more steps: the parameters are
bit-identical to N + M steps straight (model, Adam, StepLR, the shuffling loader's position and the dropout
generator all travel in the checkpoint)."""
import subprocess
import sys
from pathlib import Path

import numpy as np

import tinydl

from . import training

SCRIPT = Path(training.__file__)
N, M = 8, 9  # the checkpoint falls mid-epoch (epoch 1, batch 2 of 6); the resumed run crosses an epoch boundary


def straight_parameters() -> dict:
    run = training.build(seed=7)
    training.train(run, N + M)
    return training.parameters(run)


def test_resume_in_a_fresh_process_is_bit_identical(tmp_path):
    expected = straight_parameters()
    first = training.build(seed=7)
    state = training.train(first, N)
    at_checkpoint = training.parameters(first)
    tinydl.save(state, tmp_path / "checkpoint.tdl")
    subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "checkpoint.tdl"), str(M),
                    str(tmp_path / "resumed.tdl")], check=True, timeout=120)
    resumed = tinydl.load(tmp_path / "resumed.tdl")
    assert sorted(resumed) == sorted(expected)
    for name, value in expected.items():
        got = np.asarray(resumed[name].data if isinstance(resumed[name], tinydl.Tensor) else resumed[name])
        assert got.dtype == value.dtype == np.float32, name
        assert not np.array_equal(got, at_checkpoint[name]), f"{name}: the resumed run did not train"
        np.testing.assert_array_equal(got, value, err_msg=f"{name} differs from the straight run")


def test_the_comparison_sees_a_resume_that_forgets_part_of_the_state():
    """Control: restoring everything but the loader's position (or the dropout generator) changes the result,
    so bit-identity above is not an accident of the setup."""
    expected = straight_parameters()
    for forgotten in ("loader", "rng"):
        first = training.build(seed=7)
        state = training.train(first, N)
        second = training.build(seed=999)
        training.restore(second, {**state, forgotten: training.checkpoint(second)[forgotten]})
        training.train(second, M)
        changed = [name for name, value in training.parameters(second).items()
                   if not np.array_equal(value, expected[name])]
        assert changed, f"forgetting the {forgotten} state went unnoticed"
