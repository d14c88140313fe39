"""The op profiler: per-op/phase tables, per-module times, FLOP totals against a hand count, the Chrome trace,
saved-for-backward accounting, and its errors."""
import json
import os

import numpy as np
import pytest

import tinydl
import tinydl.functional as F
from tinydl import profiler

from .cnn import cnn_and_batch, hand_count, step


@pytest.fixture(scope="module")
def cnn_profile():
    model, images, labels = cnn_and_batch(batch=4)
    with profiler.profile(flops=True, memory=True) as prof:
        step(model, images, labels)
    return prof


def test_cnn_step_flops_within_one_percent_of_the_hand_count(cnn_profile):
    total = cnn_profile.total_flops()
    assert cnn_profile.not_counted() == []
    assert abs(total - hand_count(4)) / hand_count(4) < 0.01
    assert total > hand_count(4)  # the elementwise ops add a little on top of the products


def test_table_lists_each_op_and_phase_with_all_columns(cnn_profile):
    table = cnn_profile.table()
    keys = {(row["op"], row["phase"]) for row in table.rows}
    for op in ("conv2d", "relu", "max_pool2d", "reshape", "linear", "cross_entropy"):
        assert {(op, "forward"), (op, "backward")} <= keys
    rows = {(row["op"], row["phase"]): row for row in table.rows}
    conv = rows[("conv2d", "forward")]
    assert conv["calls"] == 2
    assert conv["FLOPs"] == "165.54M"  # 2*4*(64*1024*27 + 128*256*576) + 4*(64*1024 + 128*256) biases
    assert rows[("relu", "forward")]["saved"] != "0 B" and rows[("relu", "backward")]["saved"] == "0 B"
    assert abs(sum(float(row["share"].rstrip("%")) for row in table.rows) - 100) < 0.5
    text = str(table)
    assert text.splitlines()[0].split() == ["op", "phase", "calls", "total", "ms", "self", "ms", "avg", "ms",
                                            "share", "FLOPs", "GFLOP/s", "moved", "saved"]
    backward = rows[("conv2d", "backward")]
    assert float(backward["self ms"]) <= float(backward["total ms"])


def test_by_module_maps_backward_time_to_the_modules(cnn_profile):
    rows = {row["module"]: row for row in cnn_profile.by_module().rows}
    assert list(rows) == ["(model)", "conv1", "pool", "conv2", "fc1", "fc2"]
    assert all(float(rows[m]["backward ms"]) > 0 for m in ("conv1", "conv2", "fc1", "fc2"))
    assert float(rows["(model)"]["forward ms"]) >= float(rows["conv2"]["forward ms"])


def test_uncounted_ops_say_not_counted_never_zero(monkeypatch):
    from tinydl.functional.activation import Tanh
    monkeypatch.setattr(Tanh, "flops", None)
    x = tinydl.randn(3, requires_grad=True)
    with profiler.profile() as prof:
        F.tanh(x * 2).sum().backward()
        tinydl.nn.Tanh()(x)
    assert [r["FLOPs"] for r in prof.by_module().rows] == ["not counted"]
    rows = {(r["op"], r["phase"]): r for r in prof.table().rows}
    assert rows[("tanh", "forward")]["FLOPs"] == "not counted"
    assert rows[("tanh", "forward")]["GFLOP/s"] == "not counted"
    assert rows[("mul", "forward")]["FLOPs"] == "3"
    assert "not counted (no FLOP formula): tanh (forward)" in str(prof.table())
    assert prof.not_counted() == ["tanh (forward)"]


def test_chrome_trace_loads_with_two_tracks_nested_events_and_a_saved_bytes_counter(cnn_profile, tmp_path):
    path = tmp_path / "trace.json"
    cnn_profile.export_chrome_trace(path)
    trace = json.loads(path.read_text())["traceEvents"]
    spans = [e for e in trace if e["ph"] == "X"]
    assert {e["tid"] for e in spans if e["cat"] == "forward"} == {1}
    assert {e["tid"] for e in spans if e["cat"] == "backward"} == {2}
    for tid in (1, 2):  # events on one track nest: each one ends before the next one that starts after it
        stack = []
        for event in sorted((e for e in spans if e["tid"] == tid), key=lambda e: (e["ts"], -e["dur"])):
            while stack and stack[-1] <= event["ts"]:
                stack.pop()
            assert not stack or event["ts"] + event["dur"] <= stack[-1] + 1e-3
            stack.append(event["ts"] + event["dur"])
    counter = [e["args"]["bytes"] for e in trace if e["ph"] == "C"]
    assert max(counter) > 0 and counter[-1] == 0  # everything saved is freed by the end of backward


def test_live_saved_bytes_peak_is_what_the_forward_kept():
    x = tinydl.tensor(np.ones((100, 100), np.float32), requires_grad=True)
    with profiler.profile() as prof:
        y = F.exp(x)          # saves x (40 kB)
        z = F.tanh(y)         # saves y (40 kB)
        z.sum().backward()    # sum keeps z (40 kB): every node holds its inputs
    assert max(b for _, b in prof.live_saved) == 3 * 40_000
    assert prof.live_saved[-1][1] == 0


def test_nested_profilers_and_unwritable_trace_path_raise_clear_errors(tmp_path):
    with profiler.profile() as prof:
        with pytest.raises(RuntimeError, match="a profiler is already running in this thread"):
            with profiler.profile():
                pass
        F.exp(tinydl.ones(2))
    target = tmp_path / "no-such-dir" / "trace.json"
    with pytest.raises(OSError, match="export_chrome_trace: cannot write the trace to .*no-such-dir"):
        prof.export_chrome_trace(target)
    assert not os.path.exists(target)


@pytest.mark.gpu
def test_cuda_events_time_ops_on_the_gpu():
    if not tinydl.is_available("cuda"):
        pytest.skip("needs CuPy and an NVIDIA GPU")
    x = tinydl.randn(256, 256, device="cuda", requires_grad=True)
    with profiler.profile(sync=False) as prof:
        (x @ x).sum().backward()
    record = next(r for r in prof.records if r.op == "matmul" and r.phase == "forward")
    assert record.cuda_events is not None and record.seconds > 0
    assert prof.total_flops() >= 2 * 256 ** 3
