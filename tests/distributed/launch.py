"""Start ``mpiexec -n N python ranks.py ...`` from a test, with a timeout that kills the whole process group.

The tests are skipped, saying why, when mpi4py or the ``mpiexec`` next to this Python are missing
(``pip install 'tinydl[distributed]'`` installs both).
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

import pytest

ROOT = Path(__file__).resolve().parents[2]
RANKS = Path(__file__).resolve().parent / "ranks.py"
MPIEXEC = Path(sys.executable).parent / "mpiexec"

MISSING = ("mpi4py is not installed" if importlib.util.find_spec("mpi4py") is None else
           f"no mpiexec next to {sys.executable}" if not MPIEXEC.exists() else None)
needs_mpi = pytest.mark.skipif(MISSING is not None, reason=f"{MISSING}: pip install 'tinydl[distributed]'")


@dataclass
class Job:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def result(self) -> dict:
        """The JSON that rank 0 printed after ``RESULT``."""
        lines = [line for line in self.stdout.splitlines() if line.startswith("RESULT ")]
        assert self.returncode == 0 and lines, f"job failed ({self.returncode}):\n{self.stdout}\n{self.stderr}"
        return json.loads(lines[-1][len("RESULT "):])


def run_ranks(*args: str, ranks: int = 2, timeout: float = 60.0, script: Path = RANKS) -> Job:
    """Run ``script`` with ``args`` on ``ranks`` processes, one BLAS thread each; kill everything at ``timeout``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [str(MPIEXEC), "-n", str(ranks), sys.executable, str(script), *args]
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"mpiexec {' '.join(args)} did not finish within {timeout} s (killed):\n{stdout}\n{stderr}")
    return Job(process.returncode, stdout, stderr, time.monotonic() - start)
