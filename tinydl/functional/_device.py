"""Ops whose array code runs outside their Functions run on the GPU of their inputs.

CuPy allocates and launches kernels on the *current* GPU, whatever device its inputs live on. A Function enters
its inputs' device itself (``Function.__call__``), but some public ops also work on raw arrays around their
Functions (class targets, masks, pooling matrices, scalars turned into tensors): those are decorated with
:func:`on_the_inputs_device`, so that on tensors of "cuda:1" that work lands on GPU 1 too. On the CPU the
decorator costs one type check. (tests/core/test_gpu_parity.py runs the whole catalogue on a second GPU, which
is how the ops that need it were found.)
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import numpy

from ..backend import device_scope
from ..tensor import Tensor


def _first_array(args: tuple[Any, ...]) -> Any:
    """The data of the first Tensor among ``args`` (looking into a leading list or tuple of Tensors), or None."""
    for value in args:
        if isinstance(value, (list, tuple)) and value:
            value = value[0]
        if isinstance(value, Tensor):
            return value.data
    return None


def on_the_inputs_device(op: Callable[..., Any]) -> Callable[..., Any]:
    """``op`` run inside the device scope of its first tensor argument (no scope for CPU tensors)."""
    @functools.wraps(op)
    def run(*args: Any, **kwargs: Any) -> Any:
        data = _first_array(args)
        if data is None or type(data) is numpy.ndarray:
            return op(*args, **kwargs)
        with device_scope(data):
            return op(*args, **kwargs)
    return run
