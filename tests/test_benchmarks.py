"""The benchmark scripts keep running: a quick smoke run of each (the overhead one in the default run, all of them
under ``-m slow``). These check that the scripts work and print a ratio, not the figures themselves."""
import pathlib
import subprocess
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).parents[1] / "benchmarks"


def run(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=BENCHMARKS, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_overhead_benchmark_prints_a_ratio():
    output = run("bench_overhead.py", "--quick")
    assert "ratio" in output and "chain of 999 ops" in output


@pytest.mark.slow
def test_every_benchmark_runs_quickly():
    output = run("run_all.py", "--quick")
    assert output.count("===") >= 2 * 5


@pytest.mark.slow
def test_version_checks_benchmark_prints_both_workloads():
    output = run("bench_version_checks.py", "--quick")
    assert "CNN training step, batch 8" in output and "chain of 999 ops" in output
