"""Collectives on Tensors and arrays: ``all_reduce``, ``broadcast``, ``all_gather``.

Every rank must call the same collectives in the same order (that is what makes them collective): a collective
called on some ranks only is a bug in the calling program, and the ranks that called it wait for the others
forever (MPI has no timeout). See docs/distributed.md for what that looks like and how to find it.

NumPy arrays travel through MPI's buffer interface (no pickling, no copies beyond the one into the result); CuPy
arrays through NCCL (:mod:`tinydl.distributed.nccl`). The public functions return a new value of the kind they
were given (a Tensor, detached, for a Tensor; an array for an array; a NumPy array for a number) and leave their
input unchanged. They first check that every rank passed the same dtype (and, where it matters, shape), so a
mismatch raises a ValueError on every rank, naming each rank's shape and dtype, instead of corrupting memory.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import numpy

from ..backend import device_scope, get_array_module
from ..tensor import Tensor
from .nccl import group_for, nccl_available
from .world import World, init

__all__ = ["all_reduce", "broadcast", "all_gather", "sum_into", "sum_in_place", "broadcast_in_place"]


def _is_gpu_array(array: Any) -> bool:
    return type(array).__module__.startswith("cupy")


def _uses_nccl(world: World, array: Any) -> bool:
    """GPU arrays go through NCCL; in a world of one only when NCCL is there (nothing needs to move otherwise)."""
    return _is_gpu_array(array) and (world.size > 1 or nccl_available())


# --------------------------------------------------------------------------------- unchecked building blocks
def sum_into(send: Any, receive: Any, world: World | None = None) -> None:
    """``receive`` <- the elementwise sum of every rank's ``send`` (both C-contiguous, of one shape and dtype on
    every rank, not checked; ``receive`` may be ``send`` itself, for a sum in place)."""
    world = world or init()
    if _uses_nccl(world, send):
        with device_scope(send):
            group_for(world, send).sum_into(send, receive)
    elif world.size > 1:
        from mpi4py import MPI
        world.comm.Allreduce(MPI.IN_PLACE if send is receive else send, receive, op=MPI.SUM)
    elif send is not receive:
        receive[...] = send


def sum_in_place(array: Any, world: World | None = None) -> None:
    """``array`` <- the elementwise sum of every rank's ``array``. Used by DistributedDataParallel's buckets."""
    sum_into(array, array, world)


def broadcast_in_place(array: Any, src: int = 0, world: World | None = None) -> None:
    """``array`` <- rank ``src``'s ``array`` (C-contiguous; same shape and dtype on every rank, not checked)."""
    world = world or init()
    if _uses_nccl(world, array):
        with device_scope(array):
            group_for(world, array).broadcast_in_place(array, src)
    elif world.size > 1:
        world.comm.Bcast(array, root=src)


# --------------------------------------------------------------------------------- public, checked
def _unwrap(x: Any) -> tuple[Any, bool]:
    """(the array behind ``x``, C-contiguous: itself when it already is, else a copy; whether ``x`` was a
    Tensor). Callers never write into it."""
    if isinstance(x, Tensor):
        return get_array_module(x.data).asarray(x.data, order="C"), True
    if _is_gpu_array(x):
        return get_array_module(x).asarray(x, order="C"), False
    return numpy.asarray(x, order="C"), False


def _rewrap(array: Any, as_tensor: bool) -> Any:
    return Tensor(array) if as_tensor else array


def _check_agreement(world: World, op: str, array: Any, same_shape: bool) -> list[tuple[tuple[int, ...], str]]:
    """Every rank's (shape, dtype); raises on every rank when they disagree (dtypes always, shapes if asked)."""
    mine = (tuple(array.shape), array.dtype.str, "cuda" if _is_gpu_array(array) else "cpu")
    everyone = world.comm.allgather(mine) if world.size > 1 else [mine]
    keys = {(shape if same_shape else (), dtype, where) for shape, dtype, where in everyone}
    if len(keys) > 1:
        described = ", ".join(f"rank {number}: shape {shape} {numpy.dtype(dtype).name} on {where}"
                              for number, (shape, dtype, where) in enumerate(everyone))
        need = "shape, dtype and device" if same_shape else "dtype and device"
        raise ValueError(f"tinydl.distributed.{op}: every rank must pass the same {need}; got {described}")
    return [(shape, dtype) for shape, dtype, _ in everyone]


def _on_the_device_of_x(collective: Callable[..., Any]) -> Callable[..., Any]:
    """``collective(x, ...)`` run in the device scope of ``x``: CuPy allocates and enqueues work on the *current*
    GPU, and the result (and NCCL's stream) must be those of the GPU that holds ``x``."""
    @functools.wraps(collective)
    def run(x: Any, *args: Any, **kwargs: Any) -> Any:
        with device_scope(x.data if isinstance(x, Tensor) else x):
            return collective(x, *args, **kwargs)
    return run


@_on_the_device_of_x
def all_reduce(x: Any, op: str = "sum") -> Any:
    """The elementwise sum (``op="sum"``) or mean (``op="mean"``) of ``x`` over all ranks, on every rank.

    The mean of an integer array is returned as floats.
    """
    if op not in ("sum", "mean"):
        raise ValueError(f"tinydl.distributed.all_reduce: op must be 'sum' or 'mean', got {op!r}")
    world = init()
    mine, was_tensor = _unwrap(x)
    _check_agreement(world, "all_reduce", mine, same_shape=True)
    array = get_array_module(mine).empty_like(mine)
    sum_into(mine, array, world)
    if op == "mean":
        array = array / world.size  # integers become floats
    return _rewrap(array, was_tensor)


@_on_the_device_of_x
def broadcast(x: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``x``, on every rank (every rank passes an ``x`` of the same shape and dtype)."""
    world = init()
    if not 0 <= src < world.size:
        raise ValueError(f"tinydl.distributed.broadcast: src={src} is not a rank of this world of {world.size}")
    mine, was_tensor = _unwrap(x)
    _check_agreement(world, "broadcast", mine, same_shape=True)
    array = mine.copy()
    broadcast_in_place(array, src, world)
    return _rewrap(array, was_tensor)


@_on_the_device_of_x
def all_gather(x: Any) -> list[Any]:
    """Every rank's ``x``, in rank order, on every rank: ``[x of rank 0, x of rank 1, ...]``.

    Shapes may differ between ranks (an evaluation shard one sample shorter, say); dtypes may not.
    """
    world = init()
    array, was_tensor = _unwrap(x)
    layout = _check_agreement(world, "all_gather", array, same_shape=False)
    sizes = [int(numpy.prod(shape, dtype=numpy.int64)) for shape, _ in layout]
    xp = get_array_module(array)
    if _uses_nccl(world, array):  # NCCL gathers equal counts: pad every rank's piece to the longest
        longest = max(sizes)
        send = xp.zeros(longest, dtype=array.dtype)
        send[:array.size] = array.reshape(-1)
        received = xp.empty((world.size, longest), dtype=array.dtype)
        group_for(world, array).gather_into(send, received)
        rows = list(received)
    elif world.size == 1:
        rows = [array.reshape(-1).copy()]
    else:
        received = numpy.empty(sum(sizes), dtype=array.dtype)
        world.comm.Allgatherv(array.reshape(-1), [received, sizes])
        rows = numpy.split(received, numpy.cumsum(sizes)[:-1])
    return [_rewrap(row[:size].reshape(shape), was_tensor) for row, size, (shape, _) in zip(rows, sizes, layout)]
