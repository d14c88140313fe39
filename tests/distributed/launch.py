"""The distributed tests' launcher: ``run_ranks(scenario, ...)`` runs ``ranks.py`` under ``mpiexec -n 2``
(through :func:`tinydl.testing.mpi.run_mpi`); ``needs_mpi`` skips, saying why, where MPI is missing."""
from __future__ import annotations

from pathlib import Path

import pytest

from tinydl.testing.mpi import MPIJob, mpi_missing, run_mpi

ROOT = Path(__file__).resolve().parents[2]
RANKS = Path(__file__).resolve().parent / "ranks.py"

needs_mpi = pytest.mark.skipif(mpi_missing() is not None, reason=str(mpi_missing()))


def run_ranks(*args: str, ranks: int = 2, timeout: float = 60.0, script: Path = RANKS) -> MPIJob:
    """``script`` with ``args`` on ``ranks`` processes from the repository root; a test failure at ``timeout``."""
    try:
        return run_mpi(script, *args, ranks=ranks, timeout=timeout, cwd=ROOT, pythonpath=ROOT)
    except TimeoutError as error:
        pytest.fail(str(error))
