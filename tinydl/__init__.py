"""tinydl: a from-scratch deep-learning engine. Reverse-mode autograd over NumPy (CPU) or CuPy (GPU)."""
from __future__ import annotations

import numpy as _numpy

from .autograd import Function, enable_grad, grad, is_grad_enabled, no_grad, set_grad_enabled
from .anomaly import detect_anomaly
from .backend import Device, device, get_array_module, is_available
from .tensor import Tensor, as_tensor, tensor
from .creation import (arange, default_generator, empty, eye, full, full_like, linspace, manual_seed, ones,
                       ones_like, rand, rand_like, randint, randn, randn_like, randperm, zeros, zeros_like)
from . import cuda, data, functional
from . import nn, optim
from .serialization import load, save
from . import profiler, viz
from .summary import summary
from .tracer import step_backward, trace_backward
from .kernels.threads import get_num_threads, set_num_threads
from .allocator import keep_freed_memory
from .functional import (cat, chunk, exp, log, matmul, maximum, minimum, permute, reshape, sigmoid, split, sqrt,
                         stack, tanh, where)

float16 = _numpy.dtype(_numpy.float16)
float32 = _numpy.dtype(_numpy.float32)
float64 = _numpy.dtype(_numpy.float64)
int32 = _numpy.dtype(_numpy.int32)
int64 = _numpy.dtype(_numpy.int64)
uint8 = _numpy.dtype(_numpy.uint8)
bool_ = _numpy.dtype(_numpy.bool_)
float = float32  # noqa: A001  (PyTorch's alias)
long = int64
double = float64

__version__ = "0.1.0"
