"""Timing tinydl against its PyTorch peer fairly on a noisy machine.

Both sides run in one process, with the same thread count, alternating in rounds (tinydl's calls, then torch's,
then tinydl's, ...), after warm-up; we report the median of each and the ratio tinydl / torch. Absolute times drift
with the machine's load; the ratio of interleaved medians is what stays comparable between runs.

Each side's turn first *settles*: it runs untimed for at least :data:`SETTLE_SECONDS`, and only then are its calls
timed. A library's idle threads keep spinning on their cores for a while after its last call (NumPy's OpenBLAS for
about 2^28 cycles, 0.1 s here), and a call timed in that window runs with a core taken by the *other* library.
Alternating call by call, as this harness did until the fourth session, timed every PyTorch call in tinydl's
window: the CNN step measured PyTorch at 139-153 ms right after tinydl's steps and 84-107 ms one step later, so
the reported ratio was 0.9 where the settled one is 1.15-1.36 (blocks of steps, and ``python
benchmarks/bench_cnn.py``, 2 threads).
"""
from __future__ import annotations

import dataclasses
import gc
import os
import statistics
import time
from typing import Callable


def set_threads(count: int | None = None) -> int:
    """Use ``count`` threads (default: every core) in NumPy's BLAS and in PyTorch alike; returns the count.

    NumPy's BLAS reads its thread count from the environment when it is first loaded, so benchmark scripts call
    this before importing numpy (and therefore tinydl). Idle OpenMP threads are made to sleep (``OMP_WAIT_POLICY``,
    unless set), so that neither library's idle threads hold a core while the other one is timed.
    """
    count = count or os.cpu_count() or 1
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, str(count))
    # OpenMP threads (PyTorch's) otherwise keep spinning on their cores for a while after each parallel region, so
    # in an alternating run they take the second core from whichever library runs next: on the 2-core machine
    # tinydl's CNN step measured 194 ms after PyTorch's with spinning threads and 137 ms with passive ones, while
    # PyTorch's own step moved from 140 to 138 ms.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
        torch.set_num_threads(count)
    except ImportError:
        pass
    return count


@dataclasses.dataclass
class Comparison:
    name: str
    ours_ms: float
    peer_ms: float | None

    @property
    def ratio(self) -> float | None:
        return None if self.peer_ms is None else self.ours_ms / self.peer_ms

    def row(self) -> str:
        ratio = "   n/a" if self.ratio is None else f"{self.ratio:6.2f}"
        peer = "      n/a" if self.peer_ms is None else f"{self.peer_ms:9.3f}"
        return f"{self.name:<44} {ratio}  {self.ours_ms:9.3f}  {peer}"


HEADER = f"{'benchmark':<44} {'ratio':>6}  {'tinydl ms':>9}  {'torch ms':>9}"


_clock = time.perf_counter


def set_clock(kind: str) -> None:
    """Time by the wall clock (``"wall"``, the default) or by the process's CPU time (``"cpu"``): on a machine
    shared with other jobs, one thread's CPU time stays closer to the work done (use it with one thread: with more,
    it also counts BLAS threads spinning while they wait)."""
    global _clock
    _clock = {"wall": time.perf_counter, "cpu": time.process_time}[kind]


SETTLE_SECONDS = 0.25  # longer than either library's threads spin after their last call
TRIALS_PER_TURN = 4


def _time_once(function: Callable[[], object]) -> float:
    start = _clock()
    function()
    return (_clock() - start) * 1000


def timed_turn(function: Callable[[], object], trials: int) -> list[float]:
    """Run ``function`` untimed until the other side's threads have gone to sleep, then time ``trials`` calls."""
    settled_at = time.perf_counter() + SETTLE_SECONDS
    function()
    while time.perf_counter() < settled_at:
        function()
    return [_time_once(function) for _ in range(trials)]


def compare(name: str, ours: Callable[[], object], peer: Callable[[], object] | None, trials: int = 20,
            warmup: int = 3) -> Comparison:
    """Median milliseconds of ``trials`` calls of ``ours`` and of ``peer`` (None: no peer), interleaved in turns
    of :data:`TRIALS_PER_TURN` calls, each turn settled first (see the module's docstring).

    Everything alive before the first trial (both libraries' modules, the models, the data) is first moved out of
    the cyclic garbage collector's sight (``gc.freeze``). Otherwise tinydl pays for PyTorch being imported: a
    tinydl graph is made of Python objects, and building one triggers full collections, each of which walks
    every tracked object in the process, PyTorch's 140,000 import-time objects included (PyTorch's own graph is
    C++ and triggers none). The 10,000-op chain of ``bench_overhead.py`` measured 21.2 us per op with PyTorch
    imported against 14.6 in a process of tinydl alone, and 13.1 with the import-time objects frozen.
    """
    gc.collect()
    gc.freeze()
    for _ in range(warmup):
        ours()
        if peer is not None:
            peer()
    ours_times: list[float] = []
    peer_times: list[float] = []
    while len(ours_times) < trials:
        turn = min(TRIALS_PER_TURN, trials - len(ours_times))
        ours_times += timed_turn(ours, turn)
        if peer is not None:
            peer_times += timed_turn(peer, turn)
    return Comparison(name, statistics.median(ours_times), statistics.median(peer_times) if peer_times else None)


def torch_or_none():
    """PyTorch when installed (``pip install 'tinydl[oracle]'``), else None (the benchmark then runs alone)."""
    try:
        import torch
    except ImportError:
        return None
    return torch
