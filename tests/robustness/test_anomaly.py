"""tinydl.detect_anomaly: the first NaN/Inf, forward or backward, is reported at the op and the user line that
made it; values merely passed on are not blamed; the mode is thread-local and costs nothing when off."""
import inspect
import os
import threading

import numpy as np
import pytest

import tinydl
import tinydl.functional as F
from tinydl import anomaly, events
from tinydl.anomaly import AnomalyError

THIS_FILE = os.path.basename(__file__)

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy warns about the very NaNs we provoke


def next_line() -> int:
    """The line number after the caller's line (where the op under test is created)."""
    return inspect.currentframe().f_back.f_lineno + 1


def leaf(values, dtype=np.float32):
    return tinydl.tensor(np.array(values, dtype=dtype), requires_grad=True)


def test_forward_nan_names_op_shapes_and_user_line():
    x = leaf([[1.0, -2.0, 3.0]])
    with tinydl.detect_anomaly():
        line = next_line()
        with pytest.raises(AnomalyError) as info:
            F.sqrt(x)
    message = str(info.value)
    assert "forward of sqrt" in message and "nan" in message
    assert "(1, 3)" in message and "float32" in message
    assert f"{THIS_FILE}:{line + 1}" in message
    assert info.value.op == "sqrt" and info.value.phase == "forward"
    assert info.value.creation_stack[-1].lineno == line + 1
    assert isinstance(info.value, RuntimeError)


def test_division_by_zero_and_log_of_zero_are_caught_in_forward():
    x = leaf([1.0, 0.0])
    with tinydl.detect_anomaly():
        with pytest.raises(AnomalyError, match=r"forward of div produced inf"):
            1.0 / x
        with pytest.raises(AnomalyError, match=r"forward of log produced -inf"):
            F.log(x)
        with pytest.raises(AnomalyError, match=r"forward of div produced nan"):
            x / x  # 0 / 0


def test_backward_inf_names_op_and_the_line_that_created_the_node():
    x = leaf([0.0, 4.0])
    with tinydl.detect_anomaly():
        line = next_line()
        y = F.sqrt(x)                       # finite forward: sqrt(0) = 0
        loss = (y * 3.0).sum()
        with pytest.raises(AnomalyError) as info:
            loss.backward()                 # d sqrt / dx = 1 / (2 sqrt x) = inf at 0
    message = str(info.value)
    assert "backward of sqrt produced inf" in message
    assert "gradient of input 0 (shape (2,) float32)" in message
    assert f"{THIS_FILE}:{line}" in message
    assert info.value.phase == "backward"


def test_a_nan_passed_on_is_not_blamed_on_the_op_that_passes_it():
    x = leaf([np.nan, 1.0])
    with tinydl.detect_anomaly():
        y = (x * 2.0 + 1.0).sum()           # every op gets a NaN input: none of them made it
        y.backward()
    assert np.isnan(x.grad.numpy()).sum() == 0  # d/dx of 2x + 1 is 2 everywhere, NaN or not
    z = leaf([1.0, 2.0])
    with tinydl.detect_anomaly():
        w = z * 2.0
        w.backward(tinydl.tensor([np.inf, 1.0]))  # a non-finite upstream gradient is the caller's, not mul's
    assert np.isinf(z.grad.numpy()[0])


def test_second_derivative_anomaly_is_reported_at_the_original_line():
    x = leaf([0.0, 1.0], dtype=np.float64)
    with tinydl.detect_anomaly():
        line = next_line()
        y = x ** 1.5                        # dy/dx = 1.5 x^0.5 = 0 at 0; d2y/dx2 = 0.75 x^-0.5 = inf at 0
        (g,) = tinydl.grad(y.sum(), x, create_graph=True)
        assert np.all(np.isfinite(g.numpy()))
        with pytest.raises(AnomalyError) as info:
            g.sum().backward()
    message = str(info.value)
    assert "(in the backward of pow)" in message and "produced inf" in message
    assert f"{THIS_FILE}:{line}" in message


def test_graph_built_outside_the_mode_is_still_checked_in_backward():
    x = leaf([0.0, 1.0])
    loss = F.sqrt(x).sum()
    with tinydl.detect_anomaly():
        with pytest.raises(AnomalyError, match=r"backward of sqrt.*created outside detect_anomaly"):
            loss.backward()


def test_no_false_alarm_on_a_finite_network():
    rng = np.random.default_rng(0)
    x = tinydl.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    w = tinydl.tensor(rng.standard_normal((3, 5)).astype(np.float32), requires_grad=True)
    target = tinydl.tensor(np.array([0, 4, 2, 1]))
    with tinydl.detect_anomaly():
        loss = F.cross_entropy(F.log_softmax(F.tanh(x @ w), 1), target)
        loss.backward()
    assert np.all(np.isfinite(w.grad.numpy()))


def test_decorator_and_nesting_restore_the_previous_mode():
    @tinydl.detect_anomaly()
    def inside():
        assert anomaly.is_anomaly_enabled()
        with tinydl.detect_anomaly():
            pass
        return anomaly.is_anomaly_enabled()

    assert not anomaly.is_anomaly_enabled()
    assert inside() is True
    assert not anomaly.is_anomaly_enabled()
    assert not events.observed
    with pytest.raises(ValueError):
        with tinydl.detect_anomaly():
            raise ValueError("boom")
    assert not anomaly.is_anomaly_enabled() and not events.observed


def test_mode_is_thread_local():
    seen = {}
    entered, release = threading.Event(), threading.Event()

    def other_thread():
        with tinydl.detect_anomaly():
            entered.set()
            release.wait(10)
            seen["inside"] = anomaly.is_anomaly_enabled()

    worker = threading.Thread(target=other_thread)
    worker.start()
    assert entered.wait(10)
    try:
        assert not anomaly.is_anomaly_enabled()     # the other thread's mode does not leak into this one
        x = leaf([-1.0])
        y = F.sqrt(x)                              # NaN, silently, as without the mode
        assert np.isnan(y.numpy()[0])
        assert not hasattr(y._creator, "_anomaly_stack")
    finally:
        release.set()
        worker.join(10)
    assert seen["inside"] is True
    assert not events.observed


def test_outside_the_mode_the_hooks_are_never_called(monkeypatch):
    def fail(*args):
        raise AssertionError("anomaly hook called outside detect_anomaly")

    monkeypatch.setattr(anomaly._AnomalyWatch, "check_forward", fail)
    monkeypatch.setattr(anomaly._AnomalyWatch, "check_backward", fail)
    x = leaf([0.0, 2.0])
    root = F.sqrt(x)
    assert not hasattr(root._creator, "_anomaly_stack")  # no creation stack captured
    loss = (root * F.log(x)).sum()
    loss.backward()                                # NaN/Inf everywhere, no error: NumPy semantics
    assert not np.all(np.isfinite(x.grad.numpy()))
