"""Flat memory: a training loop does not grow, backward frees what the graph saved, no_grad records nothing.

* tracemalloc (which sees NumPy's array buffers) watches a CNN and an LSTM train: after a warm-up, the memory in
  use returns to the same level after every step, and the peak of the second half of the run is no higher than
  that of the first.
* Weak references to every array a graph saved, and to every intermediate Tensor, die as soon as ``backward()``
  returns (while the loss itself is still referenced), without the help of the cycle collector.
* Under ``no_grad`` the outputs have no creator and no Function outlives the call.
"""
from __future__ import annotations

import gc
import sys
import tracemalloc
import weakref
from typing import Any, Callable

import numpy as np
import pytest

import tinydl
import tinydl.functional as F
from tinydl import nn, optim
from tinydl.autograd import Function


# -------------------------------------------------------------------------------------------------- models
class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                      nn.MaxPool2d(2), nn.Conv2d(4, 8, 3), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(8 * 2 * 2, 3))

    def forward(self, x):
        return self.head(self.features(x))


class SmallLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 8, num_layers=2)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        output, _ = self.lstm(x)
        return self.head(output[-1])


def cnn_batch(rng) -> tuple:
    return (tinydl.tensor(rng.standard_normal((4, 1, 8, 8)).astype(np.float32)),
            tinydl.tensor(rng.integers(0, 3, 4)))


def lstm_batch(rng) -> tuple:
    return (tinydl.tensor(rng.standard_normal((12, 4, 4)).astype(np.float32)),
            tinydl.tensor(rng.integers(0, 3, 4)))


MODELS = {"cnn": (SmallCNN, cnn_batch), "lstm": (SmallLSTM, lstm_batch)}


def trainer(kind: str) -> Callable[[], None]:
    """One training step per call, on a fixed cycle of batches (so every step allocates alike)."""
    tinydl.manual_seed(0)
    make_model, make_batch = MODELS[kind]
    model = make_model()
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    batches = [make_batch(rng) for _ in range(4)]
    count = 0

    def step() -> None:
        nonlocal count
        inputs, labels = batches[count % len(batches)]
        count += 1
        loss = F.cross_entropy(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


# ----------------------------------------------------------------------------------------------- flatness
def assert_flat(kind: str, warmup: int, steps: int, every: int = 10) -> None:
    """Train ``warmup`` steps, then ``steps`` more under tracemalloc. Every ``every`` steps, record the memory in
    use after emptying CPython's own caches, whose filling is not a leak: a full garbage collection (free lists)
    and the type attribute cache (which, up to Python 3.11, keeps a reference to every attribute name string
    looked up, such as the f-string parameter names nn.LSTM builds each call). The level must not rise above its
    first value, and the peak of the second half must not exceed that of the first."""
    step = trainer(kind)
    for _ in range(warmup):
        step()
    per_half = steps // (2 * every)
    levels = np.zeros(2 * per_half, dtype=np.int64)  # allocated before tracing: recording allocates nothing
    peaks = np.zeros(2, dtype=np.int64)
    gc.collect()
    sys._clear_type_cache()
    tracemalloc.start()
    try:
        for half in range(2):
            tracemalloc.reset_peak()
            for sample in range(half * per_half, (half + 1) * per_half):
                for _ in range(every):
                    step()
                gc.collect()
                sys._clear_type_cache()
                levels[sample] = tracemalloc.get_traced_memory()[0]
            peaks[half] = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    growth = int(levels.max() - levels[0])
    # a graph kept alive by mistake would hold every activation; even one leaked loss Tensor a step would show
    assert growth < 4 * 1024, f"{kind}: memory in use grew by {growth} bytes (levels {levels.tolist()})"
    assert peaks[1] <= peaks[0] * 1.02 + 4 * 1024, f"{kind}: peak grew from {peaks[0]} to {peaks[1]} bytes"


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_training_memory_is_flat(kind):
    assert_flat(kind, warmup=5, steps=60)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_training_memory_is_flat_over_2000_steps(kind):
    assert_flat(kind, warmup=20, steps=2000)


# -------------------------------------------------------------------------------- what backward releases
def graph_functions(root: tinydl.Tensor) -> list[Function]:
    found, stack, seen = [], [root._creator], set()
    while stack:
        function = stack.pop()
        if function is None or id(function) in seen:
            continue
        seen.add(id(function))
        found.append(function)
        stack.extend(t._creator for t in function.inputs)
    return found


def arrays_in(value: Any) -> list[np.ndarray]:
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, (list, tuple)):
        return [a for item in value for a in arrays_in(item)]
    if isinstance(value, dict):
        return [a for item in value.values() for a in arrays_in(item)]
    return [a for item in vars(value).values() for a in arrays_in(item)] if hasattr(value, "__dict__") and \
        not isinstance(value, (Function, tinydl.Tensor, type)) else []


def saved_state(root: tinydl.Tensor, leaves: list[tinydl.Tensor]) -> tuple[list[weakref.ref], list[weakref.ref]]:
    """Weak references to every array the graph's Functions hold (attributes, nested containers included)
    apart from the leaves' own data, and to every intermediate (non-leaf) Tensor other than ``root``."""
    leaf_arrays = {id(t.data) for t in leaves}
    arrays, tensors = {}, {}
    for function in graph_functions(root):
        for value in vars(function).values():
            for array in arrays_in(value):
                if id(array) not in leaf_arrays:
                    arrays[id(array)] = array
        for tensor in function.inputs:
            if tensor._creator is not None:
                tensors[id(tensor)] = tensor
    return [weakref.ref(a) for a in arrays.values()], [weakref.ref(t) for t in tensors.values()]


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_backward_frees_every_array_the_graph_saved(kind):
    tinydl.manual_seed(0)
    make_model, make_batch = MODELS[kind]
    model = make_model()
    inputs, labels = make_batch(np.random.default_rng(0))
    gc.collect()
    gc.disable()  # freed by reference counting alone, not by a later cycle collection
    try:
        loss = F.cross_entropy(model(inputs), labels)
        saved_arrays, intermediates = saved_state(loss, list(model.parameters()) + [inputs])
        assert len(saved_arrays) > 5 and len(intermediates) > 5  # the probe sees the graph
        assert all(ref() is not None for ref in saved_arrays + intermediates)
        loss.backward()
        alive_arrays = [ref() for ref in saved_arrays if ref() is not None]
        alive_tensors = [ref() for ref in intermediates if ref() is not None]
        assert not alive_arrays, f"{kind}: {len(alive_arrays)} saved arrays outlive backward, shapes " \
                                 f"{[a.shape for a in alive_arrays][:8]}"
        assert not alive_tensors, f"{kind}: {len(alive_tensors)} intermediate tensors outlive backward"
        assert loss.item() == loss.item()  # the loss itself is still usable
    finally:
        gc.enable()


def test_retain_graph_keeps_the_saved_arrays_until_the_last_backward():
    model = SmallLSTM()
    inputs, labels = lstm_batch(np.random.default_rng(1))
    loss = F.cross_entropy(model(inputs), labels)
    saved_arrays, _ = saved_state(loss, list(model.parameters()) + [inputs])
    loss.backward(retain_graph=True)
    assert all(ref() is not None for ref in saved_arrays)
    loss.backward()
    assert all(ref() is None for ref in saved_arrays)


# ------------------------------------------------------------------------------------ no_grad inference
def live_functions() -> int:
    gc.collect()
    return sum(isinstance(o, Function) for o in gc.get_objects())


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_no_grad_inference_records_nothing(kind):
    tinydl.manual_seed(0)
    make_model, make_batch = MODELS[kind]
    model = make_model()
    model.eval()
    inputs, _ = make_batch(np.random.default_rng(2))
    before = live_functions()
    with tinydl.no_grad():
        outputs = model(inputs)
    assert outputs._creator is None and not outputs.requires_grad
    assert live_functions() == before
    with_grad = model(inputs)                      # the control: the same call with grad mode on records
    assert with_grad._creator is not None and live_functions() > before
