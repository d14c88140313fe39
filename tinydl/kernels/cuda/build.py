"""Building the fused CUDA kernels: once per (source, element type), never per call.

Every kernel source here is CUDA C++ written over an element type ``real``; :func:`source_for` prepends
``typedef float real;`` or ``typedef double real;`` (and the shared device helpers of :data:`HELPERS`), and
:func:`kernel` compiles the result with CuPy's ``RawModule`` (NVRTC) the first time a kernel of that source and
dtype is asked for. ``functools.lru_cache`` keeps the compiled module, and CuPy keeps the binary in its on-disk
cache, so a training step only looks kernels up.

:func:`can_fuse` is the one test every fused path makes: the library-wide switch is on
(:func:`tinydl.backend.fused_kernels_enabled`), every array is a CuPy array, and every floating-point array is
float32 or float64 (the element types the sources are written for). Anything else (NumPy arrays, float16) takes the
plain array-module path, which is the reference the fused kernels are tested against.

Nothing here imports CuPy at import time: :func:`tinydl.backend._cupy` does, on the first compilation.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import numpy

from ...backend import _cupy, fused_kernels_enabled, is_cupy

__all__ = ["REAL_TYPES", "HELPERS", "SOURCES", "register", "source_for", "kernel", "can_fuse", "launch",
           "launch_rows", "real", "size", "flag", "contiguous", "as_contiguous", "empty", "on_device"]

REAL_TYPES = {"float32": "float", "float64": "double"}
THREADS = 256          # threads per block of an elementwise kernel
MAX_BLOCKS = 65535     # grid-stride loops cover any size with at most this many blocks
ROW_THREADS = 256      # threads per block of a row kernel (the ROW_THREADS of HELPERS)

COMPILE_OPTIONS = ("--std=c++14",)  # what tinydl passes to RawModule (CuPy adds -arch, -ftz=true and a few more)

SOURCES: dict[str, str] = {}  # every registered source by name, so that a test can compile them all

HELPERS = r"""
// NVRTC has no <math.h>, hence no INFINITY: -inf is the float with bit pattern 0xff800000, widened to real.
#define NEGATIVE_INFINITY ((real)__int_as_float(0xff800000))

// Shared device helpers.  sigmoid(x) = 1 / (1 + e^-x), written as 1/2 + tanh(x / 2) / 2, which never overflows.
__device__ __forceinline__ real sigmoid_of(real x) { return (real)0.5 + (real)0.5 * tanh((real)0.5 * x); }

// A grid-stride loop: thread t of the grid handles elements t, t + (threads in the grid), ... below n.
#define FOR_EACH_INDEX(i, n) \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

// Block-wide reductions for the row kernels (one block of ROW_THREADS threads per row).  Each warp of 32 threads
// first combines its values with shuffles (no shared memory); the first thread of each warp writes its partial
// result to shared memory, and the first warp combines those.  Every thread of the block gets the result.
#define ROW_THREADS 256
// Every block walks rows blockIdx.x, blockIdx.x + gridDim.x, ...; its threads stride over the row's columns.
#define FOR_EACH_ROW(row, rows) for (long long row = blockIdx.x; row < (rows); row += gridDim.x)
#define FOR_EACH_COLUMN(c, columns) for (long long c = threadIdx.x; c < (columns); c += blockDim.x)
__device__ __forceinline__ real warp_sum(real value) {
    for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_down_sync(0xffffffffu, value, offset);
    return value;
}
__device__ __forceinline__ real warp_max(real value) {
    for (int offset = 16; offset > 0; offset >>= 1) value = fmax(value, __shfl_down_sync(0xffffffffu, value, offset));
    return value;
}
__device__ real block_sum(real value) {
    __shared__ real partial[32];
    __shared__ real total;
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    value = warp_sum(value);
    if (lane == 0) partial[warp] = value;
    __syncthreads();
    if (warp == 0) {
        value = lane < (blockDim.x + 31) / 32 ? partial[lane] : (real)0;
        value = warp_sum(value);
        if (lane == 0) total = value;
    }
    __syncthreads();
    return total;
}
__device__ real block_max(real value) {
    __shared__ real partial[32];
    __shared__ real total;
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    value = warp_max(value);
    if (lane == 0) partial[warp] = value;
    __syncthreads();
    if (warp == 0) {
        value = lane < (blockDim.x + 31) / 32 ? partial[lane] : NEGATIVE_INFINITY;
        value = warp_max(value);
        if (lane == 0) total = value;
    }
    __syncthreads();
    return total;
}
"""


def register(name: str, source: str) -> str:
    """Record ``source`` under ``name`` (a family of kernels) and return the name."""
    SOURCES[name] = source
    return name


def source_for(name: str, dtype: str) -> str:
    """The complete CUDA source of family ``name`` for element type ``dtype`` ("float32" or "float64")."""
    return f"typedef {REAL_TYPES[dtype]} real;\n{HELPERS}\n{SOURCES[name]}"


@functools.lru_cache(maxsize=None)
def _module(name: str, dtype: str) -> Any:
    return _cupy().RawModule(code=source_for(name, dtype), options=COMPILE_OPTIONS)


@functools.lru_cache(maxsize=None)
def kernel(name: str, dtype: str, function: str) -> Any:
    """The compiled kernel ``function`` of family ``name`` for element type ``dtype`` (built on first use)."""
    return _module(name, dtype).get_function(function)


def can_fuse(*arrays: Any) -> bool:
    """True when a fused kernel may run on ``arrays``: the switch is on, they are all CuPy arrays, and the
    floating-point ones are all float32 or all float64 (None entries, for absent optional arrays, are skipped)."""
    present = [a for a in arrays if a is not None]
    if not fused_kernels_enabled() or not is_cupy(*present):
        return False
    floats = {a.dtype.name for a in present if a.dtype.kind == "f"}
    return len(floats) == 1 and floats <= REAL_TYPES.keys()


def contiguous(*arrays: Any) -> bool:
    """True when every array is C-contiguous (the layout the elementwise kernels index)."""
    return all(a.flags.c_contiguous for a in arrays)


def as_contiguous(array: Any) -> Any:
    """``array`` itself when C-contiguous, else a C-contiguous copy on the same device (never on the host)."""
    return array if array.flags.c_contiguous else array.copy(order="C")


def on_device(like: Any) -> Any:
    """A context in which CuPy allocates and launches on ``like``'s GPU (``with on_device(x): ...``)."""
    return like.device


def empty(like: Any, shape: Sequence[int] | None = None, dtype: Any = None) -> Any:
    """An uninitialised CuPy array on ``like``'s device, of ``like``'s shape and dtype unless given."""
    cupy = _cupy()
    with on_device(like):
        return cupy.empty(like.shape if shape is None else tuple(shape), like.dtype if dtype is None else dtype)


def real(array: Any, value: float) -> Any:
    """``value`` as a scalar of ``array``'s element type (a kernel's ``real`` argument)."""
    return array.dtype.type(value)


def flag(value: bool) -> numpy.int32:
    """A boolean as a kernel's ``int`` argument."""
    return numpy.int32(bool(value))


def size(value: int) -> numpy.int64:
    """``value`` as a ``long long`` kernel argument."""
    return numpy.int64(value)


def launch(function: Any, count: int, args: Sequence[Any]) -> None:
    """Run an elementwise kernel (a grid-stride loop over ``count`` elements) on the device of its first array
    argument."""
    if count:
        _run(function, min(MAX_BLOCKS, math.ceil(count / THREADS)), THREADS, args)


def launch_rows(function: Any, rows: int, args: Sequence[Any]) -> None:
    """Run a row kernel: one block of ROW_THREADS (256) threads per row, rows in a grid-stride loop."""
    if rows:
        _run(function, min(MAX_BLOCKS, rows), ROW_THREADS, args)


def _run(function: Any, blocks: int, threads: int, args: Sequence[Any]) -> None:
    first_array = next(a for a in args if hasattr(a, "shape") and a.ndim > 0)
    with on_device(first_array):
        function((blocks,), (threads,), tuple(args))
