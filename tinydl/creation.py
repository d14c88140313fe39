"""Creating tensors: constants, ranges and random numbers (one seeded generator per device).

Every creation function allocates inside :func:`tinydl.backend.device_scope` of its device, so ``device="cuda:1"``
allocates on GPU 1 (CuPy allocates on the *current* GPU).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy

from .backend import Device, array_module_for, device as as_device, device_scope
from .kernels.random import random_permutation
from .tensor import Tensor

__all__ = ["zeros", "ones", "full", "empty", "arange", "linspace", "eye", "randn", "rand", "randint", "randperm",
           "zeros_like", "ones_like", "full_like", "randn_like", "rand_like", "manual_seed", "default_generator"]

_DEFAULT_FLOAT = numpy.dtype(numpy.float32)
_generators: dict[Device, Any] = {}
_seed: int | None = None


def manual_seed(seed: int) -> None:
    """Seed every random-number generator tinydl uses: the CPU's and each GPU's (one generator per device, each
    started from ``seed``, made when the device first draws)."""
    global _seed
    _seed = int(seed)
    _generators.clear()


def default_generator(device: Any = "cpu") -> Any:
    """The generator behind randn/rand/randint/randperm and dropout on ``device`` (NumPy's on the CPU, CuPy's,
    whose state lives on that GPU, on a GPU)."""
    device = as_device(device)
    generator = _generators.get(device)
    if generator is None:
        with device_scope(device):
            generator = _generators[device] = array_module_for(device).random.default_rng(_seed)
    return generator


def _size(shape: Sequence[Any]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def _finish(array: Any, requires_grad: bool) -> Tensor:
    return Tensor(array, requires_grad=requires_grad)


def zeros(*shape: Any, dtype: Any = None, device: Any = "cpu", requires_grad: bool = False) -> Tensor:
    with device_scope(device):
        return _finish(array_module_for(device).zeros(_size(shape), dtype=dtype or _DEFAULT_FLOAT), requires_grad)


def ones(*shape: Any, dtype: Any = None, device: Any = "cpu", requires_grad: bool = False) -> Tensor:
    with device_scope(device):
        return _finish(array_module_for(device).ones(_size(shape), dtype=dtype or _DEFAULT_FLOAT), requires_grad)


def empty(*shape: Any, dtype: Any = None, device: Any = "cpu", requires_grad: bool = False) -> Tensor:
    with device_scope(device):
        return _finish(array_module_for(device).empty(_size(shape), dtype=dtype or _DEFAULT_FLOAT), requires_grad)


def full(shape: Sequence[int], fill_value: Any, dtype: Any = None, device: Any = "cpu",
         requires_grad: bool = False) -> Tensor:
    """A tensor filled with ``fill_value`` (dtype from the value when not given: float32, int64 or bool)."""
    if dtype is None:
        dtype = numpy.dtype(bool) if isinstance(fill_value, bool) else (
            numpy.dtype(numpy.int64) if isinstance(fill_value, int) else _DEFAULT_FLOAT)
    with device_scope(device):
        return _finish(array_module_for(device).full(_size((shape,)), fill_value, dtype=dtype), requires_grad)


def arange(start: Any, end: Any = None, step: Any = 1, dtype: Any = None, device: Any = "cpu",
           requires_grad: bool = False) -> Tensor:
    """Values from ``start`` (inclusive) to ``end`` (exclusive) by ``step``; int64 for integer arguments."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        integral = all(isinstance(v, int) for v in (start, end, step))
        dtype = numpy.int64 if integral else _DEFAULT_FLOAT
    with device_scope(device):
        return _finish(array_module_for(device).arange(start, end, step, dtype=dtype), requires_grad)


def linspace(start: float, end: float, steps: int, dtype: Any = None, device: Any = "cpu",
             requires_grad: bool = False) -> Tensor:
    with device_scope(device):
        array = array_module_for(device).linspace(start, end, steps, dtype=dtype or _DEFAULT_FLOAT)
    return _finish(array, requires_grad)


def eye(n: int, m: int | None = None, dtype: Any = None, device: Any = "cpu", requires_grad: bool = False) -> Tensor:
    with device_scope(device):
        return _finish(array_module_for(device).eye(n, m, dtype=dtype or _DEFAULT_FLOAT), requires_grad)


def randn(*shape: Any, dtype: Any = None, device: Any = "cpu", requires_grad: bool = False) -> Tensor:
    """Standard normal samples."""
    generator = default_generator(device)
    with device_scope(device):
        array = generator.standard_normal(_size(shape), dtype=numpy.dtype(dtype or _DEFAULT_FLOAT))
    return _finish(array, requires_grad)


def rand(*shape: Any, dtype: Any = None, device: Any = "cpu", requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1)."""
    generator = default_generator(device)
    with device_scope(device):
        array = generator.random(_size(shape), dtype=numpy.dtype(dtype or _DEFAULT_FLOAT))
    return _finish(array, requires_grad)


def randint(low: int, high: int | None = None, size: Sequence[int] = (), dtype: Any = None,
            device: Any = "cpu") -> Tensor:
    """Integers uniform in [low, high) (or [0, low) when high is omitted)."""
    if high is None:
        low, high = 0, low
    generator = default_generator(device)
    with device_scope(device):
        array = generator.integers(low, high, size=tuple(size), dtype=dtype or numpy.int64)
    return _finish(array, False)


def randperm(n: int, device: Any = "cpu") -> Tensor:
    """A random permutation of 0..n-1 (int64)."""
    generator = default_generator(device)
    with device_scope(device):
        return _finish(random_permutation(generator, n), False)


def _like(other: Tensor, dtype: Any, device: Any) -> dict[str, Any]:
    return {"dtype": dtype or other.dtype, "device": device or other.device}


def zeros_like(other: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros(other.shape, requires_grad=requires_grad, **_like(other, dtype, device))


def ones_like(other: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return ones(other.shape, requires_grad=requires_grad, **_like(other, dtype, device))


def full_like(other: Tensor, fill_value: Any, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> Tensor:
    return full(other.shape, fill_value, requires_grad=requires_grad, **_like(other, dtype, device))


def randn_like(other: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return randn(other.shape, requires_grad=requires_grad, **_like(other, dtype, device))


def rand_like(other: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return rand(other.shape, requires_grad=requires_grad, **_like(other, dtype, device))
