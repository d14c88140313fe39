"""Workloads that exercise each fused CUDA kernel through the public API, for parity tests and benchmarks.

Each :class:`FusedCase` builds, for a device, a dtype and a size ("small" for parity tests, "benchmark" for the
shapes of the benchmark models), a closure that runs the op forward and backward (or one optimizer step) and
returns the raw arrays to compare: outputs and gradients. Running it once with the fusion switch on and once with
it off (:func:`tinydl.backend.set_fused_kernels`) compares the fused kernel with its plain path, the reference.

Benchmark shapes: the article's CNN at batch 64 (conv 3->64 and 64->128, 2x2 pooling, Linear 8192->512, Adam),
the char-LSTM (batch 32, hidden 256, sequence 100) and the GPT-style Transformer LM (batch 32, context 128,
width 128, 4 heads, feed-forward 512, vocabulary 65) of ``benchmarks/``.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any, Callable

import numpy

import tinydl
import tinydl.functional as F

from ..backend import get_array_module, set_fused_kernels

__all__ = ["FusedCase", "CASES", "run_both", "time_both"]

Run = Callable[[], list[Any]]


@dataclasses.dataclass(frozen=True)
class FusedCase:
    """One fused kernel's workload: ``build(device, dtype, size)`` returns the closure to run."""

    name: str
    kernel: str                                        # the family in tinydl.kernels.cuda
    build: Callable[[str, Any, str], Run]


def _leaf(rng: numpy.random.Generator, shape: tuple[int, ...], device: str, dtype: Any, scale: float = 1.0) -> Any:
    return tinydl.tensor((rng.standard_normal(shape) * scale).astype(dtype), device=device, requires_grad=True)


def _forward_backward(function: Callable[..., Any], inputs: list[Any], rng: numpy.random.Generator,
                      device: str, dtype: Any) -> Run:
    """Run ``function(*inputs)``, backpropagate a fixed random upstream gradient; return output and gradients."""
    upstream = {}

    def run() -> list[Any]:
        for tensor in inputs:
            tensor.grad = None
        output = function(*inputs)
        if "grad" not in upstream:
            upstream["grad"] = tinydl.tensor(rng.standard_normal(output.shape).astype(dtype), device=device)
        output.backward(upstream["grad"])
        return [output.data] + [tensor.grad.data for tensor in inputs]
    return run


def _elementwise(function: Callable[[Any], Any], small: tuple, large: tuple, scale: float = 1.0
                 ) -> Callable[[str, Any, str], Run]:
    def build(device: str, dtype: Any, size: str) -> Run:
        rng = numpy.random.default_rng(0)
        x = _leaf(rng, small if size == "small" else large, device, dtype, scale)
        return _forward_backward(function, [x], rng, device, dtype)
    return build


def _cross_entropy(smoothing: float, reduction: str) -> Callable[[str, Any, str], Run]:
    def build(device: str, dtype: Any, size: str) -> Run:
        rng = numpy.random.default_rng(0)
        rows, classes = (37, 11) if size == "small" else (32 * 128, 65)
        logits = _leaf(rng, (rows, classes), device, dtype, 3.0)
        labels = rng.integers(0, classes, rows)
        labels[::7] = -100                                  # some ignored samples
        target = tinydl.tensor(labels, device=device)
        return _forward_backward(lambda x: F.cross_entropy(x, target, label_smoothing=smoothing,
                                                           reduction=reduction), [logits], rng, device, dtype)
    return build


def _layer_norm(device: str, dtype: Any, size: str) -> Run:
    rng = numpy.random.default_rng(0)
    shape = (3, 5, 40) if size == "small" else (32, 128, 128)
    x, weight, bias = (_leaf(rng, s, device, dtype) for s in (shape, shape[-1:], shape[-1:]))
    return _forward_backward(lambda *t: F.layer_norm(t[0], shape[-1], t[1], t[2]), [x, weight, bias], rng, device,
                             dtype)


def _dropout(device: str, dtype: Any, size: str) -> Run:
    rng = numpy.random.default_rng(0)
    x = _leaf(rng, (33, 65) if size == "small" else (32 * 128, 512), device, dtype)

    def dropped(t: Any) -> Any:
        tinydl.manual_seed(0)                               # the same uniform draws for both paths
        return F.dropout(t, 0.1)
    return _forward_backward(dropped, [x], rng, device, dtype)


def _recurrent(kind: str) -> Callable[[str, Any, str], Run]:
    def build(device: str, dtype: Any, size: str) -> Run:
        rng = numpy.random.default_rng(0)
        steps, batch, features, hidden = (6, 3, 5, 7) if size == "small" else (100, 32, 128, 256)
        tinydl.manual_seed(0)
        layer = getattr(tinydl.nn, kind)(features, hidden).to(device=device, dtype=dtype)
        x = _leaf(rng, (steps, batch, features), device, dtype)
        parameters = list(layer.parameters())
        run = _forward_backward(lambda *t: layer(t[0])[0], [x, *parameters], rng, device, dtype)
        return run
    return build


def _attention(device: str, dtype: Any, size: str) -> Run:
    rng = numpy.random.default_rng(0)
    shape = (2, 3, 9, 5) if size == "small" else (32, 4, 128, 32)
    q, k, v = (_leaf(rng, shape, device, dtype) for _ in range(3))
    return _forward_backward(lambda *t: F.scaled_dot_product_attention(*t, is_causal=True), [q, k, v], rng, device,
                             dtype)


def _gru_cell(device: str, dtype: Any, size: str) -> Run:
    rng = numpy.random.default_rng(0)
    batch, features, hidden = (3, 5, 7) if size == "small" else (32, 128, 256)
    x, h = _leaf(rng, (batch, features), device, dtype), _leaf(rng, (batch, hidden), device, dtype)
    weights = [_leaf(rng, shape, device, dtype, 0.1) for shape in ((3 * hidden, features), (3 * hidden, hidden),
                                                                 (3 * hidden,), (3 * hidden,))]
    return _forward_backward(F.gru_cell, [x, h, *weights], rng, device, dtype)


def _max_pool(kernel: int, stride: int, padding: int, ceil_mode: bool) -> Callable[[str, Any, str], Run]:
    def build(device: str, dtype: Any, size: str) -> Run:
        rng = numpy.random.default_rng(0)
        x = _leaf(rng, (2, 3, 9, 11) if size == "small" else (64, 64, 32, 32), device, dtype)
        return _forward_backward(lambda t: F.max_pool2d(t, kernel, stride, padding, ceil_mode), [x], rng, device,
                                 dtype)
    return build


def _conv(stride: int, padding: int, dilation: int, groups: int) -> Callable[[str, Any, str], Run]:
    def build(device: str, dtype: Any, size: str) -> Run:
        rng = numpy.random.default_rng(0)
        (batch, channels, extent, out) = (2, 4, 9, 6) if size == "small" else (64, 64, 16, 128)
        x = _leaf(rng, (batch, channels, extent, extent), device, dtype)
        weight = _leaf(rng, (out, channels // groups, 3, 3), device, dtype, 0.1)
        return _forward_backward(lambda a, w: F.conv2d(a, w, None, stride, padding, dilation, groups), [x, weight],
                                 rng, device, dtype)
    return build


def _optimizer(factory: Callable[[list[Any]], Any]) -> Callable[[str, Any, str], Run]:
    """Three steps on a parameter with fixed gradients; returns the parameter and the optimizer's state."""
    def build(device: str, dtype: Any, size: str) -> Run:
        rng = numpy.random.default_rng(0)
        shape = (13, 17) if size == "small" else (512, 8192)
        start = rng.standard_normal(shape).astype(dtype)
        grads = [tinydl.tensor(rng.standard_normal(shape).astype(dtype), device=device) for _ in range(3)]

        def run() -> list[Any]:
            parameter = tinydl.nn.Parameter(tinydl.tensor(start, device=device))
            optimizer = factory([parameter])
            for grad in grads:
                parameter.grad = grad
                optimizer.step()
            state = optimizer.state[parameter]
            return [parameter.data] + [value for value in state.values() if hasattr(value, "shape")]
        return run
    return build


CASES = [
    FusedCase("gelu", "gelu", _elementwise(F.gelu, (31, 17), (32 * 128, 512))),
    FusedCase("softmax (last axis)", "softmax", _elementwise(lambda x: F.softmax(x, -1), (5, 3, 70),
                                                             (32, 4, 128, 128), 3.0)),
    FusedCase("log_softmax (last axis)", "softmax", _elementwise(lambda x: F.log_softmax(x, -1), (5, 3, 70),
                                                                 (32 * 128, 65), 3.0)),
    FusedCase("causal attention (masked softmax)", "softmax", _attention),
    FusedCase("cross_entropy", "softmax", _cross_entropy(0.0, "mean")),
    FusedCase("cross_entropy (smoothing 0.1, sum)", "softmax", _cross_entropy(0.1, "sum")),
    FusedCase("cross_entropy (reduction none)", "softmax", _cross_entropy(0.0, "none")),
    FusedCase("layer_norm", "normalization", _layer_norm),
    FusedCase("dropout", "dropout", _dropout),
    FusedCase("LSTM layer (gate maths)", "recurrent", _recurrent("LSTM")),
    FusedCase("GRU layer (gate maths)", "recurrent", _recurrent("GRU")),
    FusedCase("gru_cell (gate maths)", "recurrent", _gru_cell),
    FusedCase("max_pool2d 2x2", "pooling", _max_pool(2, 2, 0, False)),
    FusedCase("max_pool2d 3x3 stride 2 pad 1 ceil", "pooling", _max_pool(3, 2, 1, True)),
    FusedCase("conv2d 3x3 pad 1 (im2col/col2im)", "im2col", _conv(1, 1, 1, 1)),
    FusedCase("conv2d 3x3 stride 2 dilation 2 groups 2", "im2col", _conv(2, 2, 2, 2)),
    FusedCase("Adam", "optim", _optimizer(lambda p: tinydl.optim.Adam(p, lr=1e-2))),
    FusedCase("AdamW amsgrad maximize", "optim", _optimizer(lambda p: tinydl.optim.AdamW(
        p, lr=1e-2, amsgrad=True, maximize=True))),
    FusedCase("Adam L2 weight decay", "optim", _optimizer(lambda p: tinydl.optim.Adam(p, lr=1e-2,
                                                                                      weight_decay=0.1))),
    FusedCase("SGD momentum", "optim", _optimizer(lambda p: tinydl.optim.SGD(p, lr=1e-2, momentum=0.9,
                                                                             weight_decay=1e-3))),
    FusedCase("SGD nesterov maximize", "optim", _optimizer(lambda p: tinydl.optim.SGD(
        p, lr=1e-2, momentum=0.9, nesterov=True, maximize=True))),
]


def run_both(case: FusedCase, device: str, dtype: Any, size: str = "small") -> tuple[list[Any], list[Any]]:
    """(results with the fused kernels, results with the plain path), as NumPy arrays."""
    results = []
    for fused in (True, False):
        with set_fused_kernels(fused):
            run = case.build(device, dtype, size)
            results.append([tinydl.backend.to_device(array, "cpu") for array in run()])
    return results[0], results[1]


def _synchronize(array: Any) -> None:
    xp = get_array_module(array)
    if xp.__name__ != "numpy":
        xp.cuda.Device(array.device.id).synchronize()


def time_both(case: FusedCase, device: str, dtype: Any = numpy.float32, size: str = "benchmark",
              trials: int = 10, warmup: int = 2) -> tuple[float, float]:
    """Median milliseconds of one run with the fused kernels and with the plain path, interleaved trial by trial
    (each run synchronised with the device before the clock stops)."""
    runs = {}
    for fused in (True, False):
        with set_fused_kernels(fused):
            runs[fused] = case.build(device, dtype, size)
    times: dict[bool, list[float]] = {True: [], False: []}
    for trial in range(warmup + trials):
        for fused in (True, False):
            with set_fused_kernels(fused):
                start = time.perf_counter()
                outputs = runs[fused]()
                _synchronize(outputs[0])
                if trial >= warmup:
                    times[fused].append((time.perf_counter() - start) * 1000)
    return statistics.median(times[True]), statistics.median(times[False])
