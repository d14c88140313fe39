"""The CIFAR-10 example end to end, on a tiny dataset in the official binary layout written to tmp_path."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from example_scripts import load_example

import tinydl
from tinydl.testing.mpi import mpi_missing, run_mpi

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "cnn_cifar10.py"
TRAIN_PER_FILE, TEST_COUNT = 26, 64  # 5 training files: 130 training images


@pytest.fixture(scope="module")
def example():
    return load_example("cnn_cifar10")


def write_cifar_file(path: Path, count: int, rng: np.random.Generator) -> None:
    """``count`` records of one label byte and 3072 pixel bytes; the class shows in the mean of a channel, so a
    model can learn something, but the test does not depend on it."""
    labels = rng.integers(0, 10, size=count, dtype=np.uint8)
    pixels = rng.integers(0, 128, size=(count, 3, 32, 32), dtype=np.uint8)
    pixels[:, 0] += (labels * 12)[:, None, None].astype(np.uint8)
    records = np.concatenate([labels[:, None], pixels.reshape(count, -1)], axis=1)
    path.write_bytes(records.tobytes())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    folder = root / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for number in range(1, 6):
        write_cifar_file(folder / f"data_batch_{number}.bin", TRAIN_PER_FILE, rng)
    write_cifar_file(folder / "test_batch.bin", TEST_COUNT, rng)
    return root


def arguments(data_dir: Path, checkpoint_dir: Path, *extra: str) -> list[str]:
    return ["--data-dir", str(data_dir), "--checkpoint-dir", str(checkpoint_dir), "--batch-size", "32", *extra]


FINAL_LINE = re.compile(r"test accuracy: (\d{1,3}\.\d\d)%")


def final_accuracy(output: str) -> float:
    last = output.strip().splitlines()[-1]
    match = FINAL_LINE.fullmatch(last)
    assert match, f"last line {last!r} is not 'test accuracy: NN.NN%'"
    return float(match.group(1))


def test_one_epoch_prints_the_final_line_and_writes_a_checkpoint_and_plot(example, data_dir, tmp_path, capsys):
    plot = tmp_path / "curves.png"
    accuracy = example.main(arguments(data_dir, tmp_path / "ckpt", "--epochs", "1", "--plot", str(plot)))
    output = capsys.readouterr().out
    assert final_accuracy(output) == pytest.approx(accuracy, abs=0.0051)
    assert "epoch 1/1: train loss" in output

    checkpoint = tinydl.load(tmp_path / "ckpt" / "last.tdl")
    assert checkpoint["epoch"] == 1
    assert checkpoint["history"]["test_acc"] == [accuracy]
    shapes = {name: tuple(value.shape) for name, value in checkpoint["model"].items()}
    assert shapes == {"conv1.weight": (64, 3, 3, 3), "conv1.bias": (64,), "conv2.weight": (128, 64, 3, 3),
                      "conv2.bias": (128,), "fc1.weight": (512, 8192), "fc1.bias": (512,),
                      "fc2.weight": (10, 512), "fc2.bias": (10,)}
    assert all(value.dtype == np.float32 for value in checkpoint["model"].values())
    model = example.Net()
    model.load_state_dict(checkpoint["model"])  # strict: the keys are exactly the model's
    if importlib.util.find_spec("matplotlib") is not None:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_after_an_interrupted_epoch_matches_a_run_straight_through(example, data_dir, tmp_path, capsys,
                                                                          monkeypatch):
    options = ("--recipe", "best", "--epochs", "2", "--limit-train", "64", "--limit-test", "32")
    straight = example.main(arguments(data_dir, tmp_path / "straight", *options))

    real_save = example.save_checkpoint

    def save_then_crash(directory, state):
        real_save(directory, state)
        raise KeyboardInterrupt("killed after the first epoch's checkpoint")

    monkeypatch.setattr(example, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        example.main(arguments(data_dir, tmp_path / "resumed", *options))
    monkeypatch.setattr(example, "save_checkpoint", real_save)
    assert tinydl.load(tmp_path / "resumed" / "last.tdl")["epoch"] == 1
    capsys.readouterr()

    resumed = example.main(arguments(data_dir, tmp_path / "resumed", *options, "--resume"))
    output = capsys.readouterr().out
    assert "resumed from" in output and "epoch 1/2:" not in output and "epoch 2/2:" in output
    assert resumed == straight
    state_straight = tinydl.load(tmp_path / "straight" / "last.tdl")
    state_resumed = tinydl.load(tmp_path / "resumed" / "last.tdl")
    for name, value in state_straight["model"].items():
        np.testing.assert_array_equal(state_resumed["model"][name].numpy(), value.numpy(), err_msg=name)
    assert state_resumed["history"] == state_straight["history"]


def test_resume_refuses_other_settings_and_a_missing_checkpoint(example, data_dir, tmp_path):
    example.main(arguments(data_dir, tmp_path / "ckpt", "--epochs", "1", "--limit-train", "32", "--limit-test",
                           "32"))
    with pytest.raises(ValueError, match="batch_size: checkpoint 32, now 16"):
        example.main(["--data-dir", str(data_dir), "--checkpoint-dir", str(tmp_path / "ckpt"), "--batch-size", "16",
                      "--epochs", "1", "--limit-train", "32", "--limit-test", "32", "--resume"])
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*last.tdl"):
        example.main(arguments(data_dir, tmp_path / "empty", "--epochs", "1", "--resume"))


def test_missing_dataset_says_how_to_get_it(example, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        example.main(["--data-dir", str(tmp_path / "nowhere"), "--epochs", "1"])
    assert exit_info.value.code == 2
    assert re.search(r"(?s)make_cifar10_bin.py .*--download", capsys.readouterr().err)


def test_recipes_and_overrides(example):
    article = example.chosen_recipe(example.parse_arguments(["--recipe", "article"]))
    assert (article.epochs, article.batch_size, article.lr, article.augment, article.normalize,
            article.one_cycle, article.label_smoothing) == (10, 64, 1e-3, False, False, False, 0.0)
    best = example.chosen_recipe(example.parse_arguments(["--no-augment", "--lr", "0.002", "--epochs", "3"]))
    assert (best.augment, best.lr, best.epochs, best.one_cycle) == (False, 0.002, 3, True)


# ------------------------------------------------------------------------------------ --distributed (issue 11)
def distributed_arguments(data_dir: Path, checkpoint_dir: Path, *extra: str) -> list[str]:
    return arguments(data_dir, checkpoint_dir, "--distributed", "--epochs", "1", "--recipe", "article", *extra)


@pytest.mark.skipif(mpi_missing() is not None, reason=str(mpi_missing()))
def test_distributed_two_processes_train_print_once_and_save_once(data_dir, tmp_path):
    job = run_mpi(SCRIPT, *distributed_arguments(data_dir, tmp_path), ranks=2, cwd=SCRIPT.parents[1],
                  pythonpath=SCRIPT.parents[1])
    assert job.returncode == 0, job.stderr
    lines = job.stdout.strip().splitlines()
    assert sum(line.startswith("test accuracy: ") for line in lines) == 1, job.stdout
    assert "2 processes of 16 images per batch" in lines[0], lines[0]
    assert final_accuracy(job.stdout) >= 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["last.tdl"]


@pytest.mark.skipif(mpi_missing() is not None, reason=str(mpi_missing()))
def test_distributed_refuses_a_world_size_that_does_not_divide_the_batch(data_dir, tmp_path):
    job = run_mpi(SCRIPT, *distributed_arguments(data_dir, tmp_path, "--batch-size", "33"), ranks=2,
                  cwd=SCRIPT.parents[1], pythonpath=SCRIPT.parents[1])
    assert job.returncode != 0
    assert "global batch of 33 cannot be split evenly over 2 processes" in job.stderr, job.stderr


def test_distributed_without_mpi4py_names_the_pip_command(data_dir, tmp_path):
    argv = [str(SCRIPT), *distributed_arguments(data_dir, tmp_path)]
    code = (f"import sys, runpy; sys.modules['mpi4py'] = None; sys.argv = {argv!r}; "
            f"runpy.run_path(sys.argv[0], run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=SCRIPT.parents[1], env={**os.environ, "PYTHONPATH": str(SCRIPT.parents[1])})
    assert result.returncode != 0
    assert "pip install 'tinydl[distributed]'" in result.stderr, result.stderr
