"""Checkpoints in a data-parallel job: one writer, every rank a reader.

The replicas are identical after every step, so one copy of the model and optimizer state is the whole truth:
rank 0 writes it (atomically, with :func:`tinydl.save`: a temporary file renamed over the target), and every
other rank waits at a barrier until the file is complete. To resume, every rank reads the same file. Loader and
sampler positions are the same on every rank (the shard is a function of the rank, not part of the state), so
rank 0's copy of them resumes every rank exactly.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..backend import Device
from ..serialization import load as _load, save as _save
from .world import barrier, is_main

__all__ = ["save", "load"]


def save(obj: Any, path: str | os.PathLike) -> None:
    """Rank 0 writes ``obj`` to ``path`` (creating its directory); every rank returns once the file is complete.
    Call it on every rank."""
    if is_main():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        _save(obj, path)
    barrier()


def load(path: str | os.PathLike, device: Device | str | None = None) -> Any:
    """Every rank reads the checkpoint at ``path`` (Tensors moved to ``device`` when given)."""
    return _load(path, device=device)
