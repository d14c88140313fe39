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


def test_engine_ab_comparison_runs_against_a_tree():
    output = run("ab_overhead.py", str(BENCHMARKS.parent), "--trials", "2")
    assert "chain of 3000 ops" in output and "new/base" in output


def test_attention_ab_comparison_runs_against_a_tree():
    pytest.importorskip("torch")
    output = run("ab_attention.py", str(BENCHMARKS.parent), "--trials", "1")
    assert "packed     additive mask" in output and "torch" in output


def test_cnn_ab_comparison_runs_against_a_tree():
    pytest.importorskip("torch")
    output = run("ab_cnn.py", str(BENCHMARKS.parent), "--trials", "1")
    assert "new/base" in output and "new/torch" in output and "base/torch" in output


def test_recurrent_ab_comparison_runs_both_paths_in_their_own_processes():
    output = run("ab_recurrent.py", "--quick")
    assert "one process per run" in output and "new/old" in output


def test_sequence_model_profile_counts_page_faults():
    output = run("bench_sequence_models.py", "--only", "a", "--quick", "--trials", "1", "--profile", "1",
                 "--profile-by", "faults")
    assert "faults per step over 1 profiled steps" in output and "lstm_layer (forward)" in output


def test_threads_ab_comparison_times_both_settings():
    output = run("ab_threads.py", "--quick")
    assert "ReLU fwd+bwd" in output and "CNN inference, batch 100" in output and "on/off" in output


def test_conv_algorithm_ab_comparison_times_both():
    output = run("ab_conv_algorithm.py", "--pairs", "1")
    assert "im2col: median" in output and "auto: median" in output


@pytest.mark.slow
def test_every_benchmark_runs_quickly():
    output = run("run_all.py", "--quick")
    assert output.count("===") >= 2 * 5


@pytest.mark.slow
def test_version_checks_benchmark_prints_both_workloads():
    output = run("bench_version_checks.py", "--quick")
    assert "CNN training step, batch 8" in output and "chain of 999 ops" in output


def write_tiny_cifar(root: pathlib.Path, images_per_file: int = 16) -> None:
    """The CIFAR-10 binary layout with a few random records per file (label byte + 3072 pixel bytes)."""
    import numpy as np
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        records = rng.integers(0, 256, (images_per_file, 3073), dtype=np.uint8)
        records[:, 0] %= 10
        (folder / name).write_bytes(records.tobytes())


def test_gpu_check_documents_one_command():
    output = run("gpu_check.py", "--help")
    assert "python benchmarks/gpu_check.py RESULTS_DIR" in output and "--dry-run" in output


@pytest.mark.slow
def test_gpu_check_dry_run_writes_every_part(tmp_path):
    """The GPU check's code paths on the CPU: pytest twice, the three models against PyTorch (fused on and off),
    every fused-kernel workload, one (tiny) CIFAR-10 epoch; one JSON and one markdown table. About 15 s of CPU in
    five processes (45 s wall on the shared 2-core machine), hence slow."""
    import json
    pytest.importorskip("torch")
    write_tiny_cifar(tmp_path / "data")
    run("gpu_check.py", str(tmp_path / "out"), "--dry-run", "--data-dir", str(tmp_path / "data"))
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    for key in ("tests_fused", "tests_plain"):
        assert report["tests"][key]["status"] == "ok" and report["tests"][key]["passed"] == 1
    models = report["models"]
    assert models["status"] == "ok" and len(models["models"]) == 3 and "models_error" not in models
    for row in models["models"]:
        assert abs(row["first_loss_tinydl"] - row["first_loss_torch"]) < 1e-3   # the same weights and batch
    assert len(models["kernels"]) >= 19
    assert report["cifar"]["status"] == "ok" and 0 <= report["cifar"]["test_accuracy_percent"] <= 100
    table = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "(a) GPU tests" in table and "ratio fused" in table and "test accuracy" in table
