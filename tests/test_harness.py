"""The benchmark harness (benchmarks/harness.py): both sides timed the requested number of times, in alternating
turns, and no call timed before its turn has run untimed for the settling time (the other side's idle threads
would otherwise still hold a core)."""
import pathlib
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "benchmarks"))
import harness  # noqa: E402


@pytest.fixture
def quick_settling(monkeypatch):
    monkeypatch.setattr(harness, "SETTLE_SECONDS", 0.02)


def test_each_side_is_timed_as_often_as_asked_in_alternating_turns(quick_settling):
    calls = []

    def side(name):
        return lambda: calls.append((name, time.perf_counter()))

    result = harness.compare("probe", side("ours"), side("peer"), trials=6, warmup=1)
    assert result.ours_ms is not None and result.peer_ms is not None
    names = [name for name, _ in calls[2:]]  # after one warm-up call of each
    turns = [names[0]]
    for name in names[1:]:
        if name != turns[-1]:
            turns.append(name)
    assert turns == ["ours", "peer", "ours", "peer"]  # turns of 4, then of 2 timed calls


def test_a_turn_times_nothing_before_it_has_settled(quick_settling):
    starts = []

    def work():
        starts.append(time.perf_counter())
        time.sleep(0.001)

    begin = time.perf_counter()
    timed = harness.timed_turn(work, 3)
    assert len(timed) == 3
    settling_calls = len(starts) - 3
    assert settling_calls >= 1 and starts[settling_calls] - begin >= harness.SETTLE_SECONDS
    assert all(ms >= 1.0 for ms in timed)  # each timed call slept 1 ms
