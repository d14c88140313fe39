"""The backward tracer (engine order, summed contributions, norms, file:line), step_backward, and the model
summary (shapes, parameter counts with tied weights counted once, FLOPs)."""
import inspect
import io
import os

import numpy as np
import pytest

import tinydl
import tinydl.functional as F
from tinydl import nn

from .cnn import cnn_and_batch

THIS_FILE = os.path.abspath(__file__)


def test_trace_lists_steps_in_engine_order_with_norms_sites_and_sums():
    a = tinydl.tensor(np.array([1.0, 2.0]), requires_grad=True)
    out = io.StringIO()
    with tinydl.trace_backward(file=out) as tracer:
        line = inspect.currentframe().f_lineno + 1
        b = a * a
        c = b + b
        c.sum().backward()
    assert [s.op for s in tracer.steps] == ["sum", "add", "mul"]
    mul = tracer.steps[2]
    assert mul.site == f"{THIS_FILE}:{line}"
    assert mul.summed == {0: 2}  # b feeds both operands of the add
    np.testing.assert_allclose(mul.grad_outputs[0][1], np.linalg.norm([2.0, 2.0]))
    np.testing.assert_allclose(mul.grad_inputs[0][1], np.linalg.norm([2.0 * 1, 2.0 * 2]))
    printed = out.getvalue().splitlines()
    assert printed[:3] == [str(s) for s in tracer.steps]
    assert "summed: output 0 from 2 consumers" in printed[2]
    assert printed[3] == "     leaf of shape (2,): 2 contributions summed into .grad"
    np.testing.assert_allclose(a.grad.numpy(), 4 * np.array([1.0, 2.0]))  # d(2 a^2)/da: the trace changes nothing


def test_trace_of_the_cnn_names_every_module():
    model, images, labels = cnn_and_batch(batch=2)
    with tinydl.trace_backward(file=io.StringIO()) as tracer:
        F.cross_entropy(model(images), labels).backward()
    assert [(s.op, s.module_path) for s in tracer.steps] == [
        ("cross_entropy", None), ("linear", "fc2"), ("relu", ""), ("linear", "fc1"), ("reshape", ""),
        ("max_pool2d", "pool"), ("relu", ""), ("conv2d", "conv2"), ("max_pool2d", "pool"), ("relu", ""),
        ("conv2d", "conv1")]
    assert tracer.steps[-1].grad_inputs[0] is None  # the images need no gradient


def test_step_backward_runs_one_step_per_next_and_can_stop_early():
    x = tinydl.tensor(np.array([0.5, -1.0]), requires_grad=True)
    w = tinydl.tensor(np.array([2.0, 3.0]), requires_grad=True)
    loss = (F.tanh(x * w) * 2).sum()
    steps = tinydl.step_backward(loss, retain_graph=True)
    first = next(steps)
    assert first.op == "sum" and x.grad is None  # the engine waits: nothing reached the leaves yet
    rest = [(step.op, x.grad is not None) for step in steps]
    assert rest == [("mul", False), ("tanh", False), ("mul", True)]  # each step is handed over once delivered
    expected = 2 * (1 - np.tanh(x.numpy() * w.numpy()) ** 2) * w.numpy()
    np.testing.assert_allclose(x.grad.numpy(), expected)
    x.grad = w.grad = None
    for step in tinydl.step_backward(loss):
        break  # abandoned after the first step
    assert x.grad is None


def test_step_backward_hands_errors_to_the_caller():
    x = tinydl.tensor(np.ones(3), requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: g[:1])
    with pytest.raises(RuntimeError, match="expected shape"):
        list(tinydl.step_backward(y.sum()))


def test_summary_of_the_cnn_counts_parameters_shapes_and_flops():
    model, images, _ = cnn_and_batch(batch=2)
    s = tinydl.summary(model, images)
    by_hand = (3 * 9 * 64 + 64) + (64 * 9 * 128 + 128) + (8192 * 512 + 512) + (512 * 10 + 10)
    assert s.total_params == s.trainable_params == by_hand == sum(p.size for p in model.parameters())
    forward_by_hand = 2 * 2 * (64 * 1024 * 27 + 128 * 256 * 576 + 8192 * 512 + 512 * 10)  # the products
    assert 0 < s.total_flops - forward_by_hand < 0.01 * forward_by_hand
    rows = {r["module"]: r for r in s.table.rows}
    assert rows["conv2"]["output shape"] == "(2, 128, 16, 16)"
    assert rows["pool"]["output shape"] == "(2, 64, 16, 16) (x2 calls)"
    assert rows["fc1"]["params"] == "4,194,816"
    assert str(s).splitlines()[0].split() == ["module", "type", "output", "shape", "params", "FLOPs", "saved"]
    assert s.saved_bytes > images.data.nbytes


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 3, bias=False)
        self.out = nn.Linear(3, 4, bias=False)
        self.out.weight = self.embed.weight  # same Parameter object (shape (3, 4) used transposed below)
        self.frozen = nn.Linear(3, 3)
        self.frozen.requires_grad_(False)

    def forward(self, x):
        return F.linear(self.frozen(self.embed(x)), self.out.weight.T)


def test_summary_counts_tied_parameters_once_with_a_note():
    s = tinydl.summary(Tied(), tinydl.randn(2, 4))
    assert s.total_params == 12 + 12  # the tied (3, 4) weight once, the frozen layer's 9 + 3
    assert s.trainable_params == 12
    assert s.shared == [["embed.weight", "out.weight"]]
    assert "note: embed.weight = out.weight share one parameter, counted once" in str(s)
