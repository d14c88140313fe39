"""Run a script under ``mpiexec`` from a test: ``run_mpi("train.py", "--epochs", "1", ranks=2)``.

Each rank runs ``python -m mpi4py script``: mpi4py's runner turns a ``sys.exit(n)`` with ``n != 0`` (and any
uncaught exception) into ``MPI_Abort``, so one rank leaving early ends the job instead of waiting for ever in
``MPI_Finalize``. The job runs in a process group of its own, with one BLAS thread per rank; at ``timeout`` the
whole group is killed (``mpiexec`` and every rank), so a hung collective fails the test instead of hanging the
test run.
``mpi_missing()`` says why MPI jobs cannot run here (None when they can), for a skip reason.
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MPIJob", "mpiexec", "mpi_missing", "run_mpi"]


def mpiexec() -> Path:
    """The ``mpiexec`` installed next to this Python (by ``pip install 'tinydl[distributed]'``)."""
    return Path(sys.executable).parent / "mpiexec"


def mpi_missing() -> str | None:
    """Why ``run_mpi`` cannot work here, or None."""
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install 'tinydl[distributed]')"
    if not mpiexec().exists():
        return f"there is no mpiexec next to {sys.executable} (pip install 'tinydl[distributed]')"
    return None


@dataclass
class MPIJob:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def result(self) -> dict:
        """The JSON object a rank printed on a line starting with ``RESULT `` (the last such line)."""
        lines = [line for line in self.stdout.splitlines() if line.startswith("RESULT ")]
        if self.returncode != 0 or not lines:
            raise AssertionError(f"MPI job failed (status {self.returncode}, {len(lines)} RESULT lines):\n"
                                 f"{self.stdout}\n{self.stderr}")
        return json.loads(lines[-1][len("RESULT "):])


def run_mpi(script: str | os.PathLike, *args: str, ranks: int = 2, timeout: float = 60.0,
            cwd: str | os.PathLike | None = None, pythonpath: str | os.PathLike | None = None) -> MPIJob:
    """Run ``python -m mpi4py script args`` on ``ranks`` processes; raise TimeoutError (after killing the job) at
    ``timeout`` seconds. ``pythonpath`` is put in front of the ranks' PYTHONPATH."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), os.environ.get("PYTHONPATH")]))
    command = [str(mpiexec()), "-n", str(ranks), sys.executable, "-m", "mpi4py", str(script), *args]
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise TimeoutError(f"mpiexec -n {ranks} {script} {' '.join(args)} did not finish within {timeout} s and "
                           f"was killed:\n{stdout}\n{stderr}") from None
    return MPIJob(process.returncode, stdout, stderr, time.monotonic() - start)
