"""``examples/cnn_cifar10.py --distributed`` under ``mpiexec``: trains, prints once, saves once; refuses a world
size that does not divide the global batch; without mpi4py, names the pip command."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .launch import ROOT, needs_mpi, run_ranks

SCRIPT = ROOT / "examples" / "cnn_cifar10.py"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A tiny CIFAR-10 in the official binary layout: 5 x 16 training images, 40 test images."""
    root = tmp_path_factory.mktemp("cifar")
    folder = root / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, count in [(f"data_batch_{n}.bin", 16) for n in range(1, 6)] + [("test_batch.bin", 40)]:
        records = np.concatenate([rng.integers(0, 10, (count, 1)), rng.integers(0, 256, (count, 3072))], axis=1)
        (folder / name).write_bytes(records.astype(np.uint8).tobytes())
    return root


def example_arguments(data_dir: Path, checkpoints: Path, *extra: str) -> list[str]:
    return ["--distributed", "--data-dir", str(data_dir), "--checkpoint-dir", str(checkpoints),
            "--epochs", "1", "--recipe", "article", *extra]


@needs_mpi
def test_two_processes_train_print_once_and_save_once(data_dir, tmp_path):
    job = run_ranks(*example_arguments(data_dir, tmp_path), script=SCRIPT)
    assert job.returncode == 0, job.stderr
    lines = job.stdout.strip().splitlines()
    assert sum(line.startswith("test accuracy: ") for line in lines) == 1, job.stdout
    assert "2 processes of 32 images per batch" in lines[0]
    assert sorted(os.listdir(tmp_path)) == ["last.tdl"]


@needs_mpi
def test_a_world_size_that_does_not_divide_the_batch_is_refused(data_dir, tmp_path):
    job = run_ranks(*example_arguments(data_dir, tmp_path, "--batch-size", "33"),
                    script=SCRIPT)
    assert job.returncode != 0
    assert "global batch of 33 cannot be split evenly over 2 processes" in job.stderr, job.stderr


def test_without_mpi4py_distributed_names_the_pip_command(data_dir, tmp_path):
    argv = [str(SCRIPT), *example_arguments(data_dir, tmp_path)]
    code = (f"import sys, runpy; sys.modules['mpi4py'] = None; sys.argv = {argv!r}; "
            f"runpy.run_path(sys.argv[0], run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode != 0
    assert "pip install 'tinydl[distributed]'" in result.stderr, result.stderr
