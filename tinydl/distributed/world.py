"""The world of processes: who am I (``rank``), how many are we (``world_size``), and what happens when one fails.

The world is MPI's ``COMM_WORLD`` (through mpi4py), read once by :func:`init`. ``mpiexec -n N python script.py``
starts N copies of the script, ranks ``0 .. N-1``; the same script run without ``mpiexec`` is a world of one, in
which every collective returns its input and the script runs unchanged (with or without mpi4py installed).

Failure behaviour: in a world of several processes, :func:`init` installs an exception hook. A rank whose
exception reaches the top level prints its traceback and calls ``MPI_Abort``, which makes ``mpiexec`` end every
rank and exit non-zero within seconds, instead of leaving the other ranks waiting forever in their next
collective. A rank that dies outright (killed by a signal, ``os._exit(1)``) is noticed by ``mpiexec`` itself,
which ends the job the same way. A ``sys.exit(n)`` reaches no hook (Python shows no one a ``SystemExit``'s status)
and would leave that rank waiting in ``MPI_Finalize``; launching with ``python -m mpi4py script.py`` makes mpi4py
call ``MPI_Abort`` for it.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from types import TracebackType
from typing import Any

__all__ = ["init", "rank", "world_size", "local_rank", "is_main", "barrier", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'tinydl[distributed]'"
# set by the launchers for every process they start: MPICH/Intel MPI (Hydra, Slurm's PMI), Open MPI
_LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


@dataclass(frozen=True)
class World:
    """``comm`` is mpi4py's ``COMM_WORLD``, or None in a world of one without mpi4py."""

    comm: Any
    rank: int
    size: int


_world: World | None = None


def import_mpi() -> Any:
    """mpi4py's ``MPI`` module (importing it initialises MPI), or an ImportError that says what to install."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(f"tinydl.distributed needs mpi4py and an MPI library, which are not installed: "
                          f"{INSTALL_HINT} (mpi4py and the MPICH library, with its mpiexec)") from error
    return MPI


def launched_size() -> int:
    """The world size an MPI launcher announced in the environment (1 when not started by one)."""
    for variable in _LAUNCHER_SIZE_VARIABLES:
        value = os.environ.get(variable)
        if value and value.isdigit():
            return int(value)
    return 1


def init(require_mpi: bool = False) -> World:
    """Join the world (once; later calls return it). ``require_mpi=True`` raises the install hint when mpi4py is
    missing even in a world of one; otherwise a script started without ``mpiexec`` runs as a world of one without
    MPI. Every other function of ``tinydl.distributed`` calls this first, so an explicit call is optional."""
    global _world
    if _world is not None:
        if require_mpi and _world.comm is None:
            import_mpi()  # joined earlier as a world of one without mpi4py: still missing, say so
        return _world
    try:
        mpi = import_mpi()
    except ImportError:
        if require_mpi or launched_size() > 1:
            raise
        _world = World(comm=None, rank=0, size=1)
        return _world
    comm = mpi.COMM_WORLD
    _world = World(comm=comm, rank=comm.Get_rank(), size=comm.Get_size())
    if _world.size > 1:
        _install_abort_on_exception(comm, _world.rank)
    return _world


def _install_abort_on_exception(comm: Any, my_rank: int) -> None:
    """Make an uncaught exception on this rank end the whole job (after printing its traceback as usual)."""
    previous_hook = sys.excepthook

    def abort_world(kind: type[BaseException], error: BaseException, traceback: TracebackType | None) -> None:
        try:
            previous_hook(kind, error, traceback)
            sys.stderr.write(f"tinydl.distributed: rank {my_rank} stopped on {kind.__name__}; aborting every "
                             f"rank (MPI_Abort)\n")
            sys.stderr.flush()
            sys.stdout.flush()
        finally:
            comm.Abort(1)

    sys.excepthook = abort_world


def rank() -> int:
    """This process's number in the world, ``0 .. world_size() - 1``."""
    return init().rank


def world_size() -> int:
    """How many processes train together (1 without ``mpiexec``)."""
    return init().size


def is_main() -> bool:
    """True on rank 0: the rank that prints, writes checkpoints and owns the truth when ranks must agree."""
    return init().rank == 0


def local_rank() -> int:
    """This process's number among the processes of its own machine (which GPU it should use)."""
    world = init()
    if world.comm is None or world.size == 1:
        return 0
    from mpi4py import MPI
    return world.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()


def barrier() -> None:
    """Wait until every rank has reached this call."""
    world = init()
    if world.comm is not None and world.size > 1:
        world.comm.Barrier()
