"""The BERT-style classifier example end to end on a tiny fake news corpus (seconds per run)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from example_scripts import load_example

import tinydl

TOPICS = {"markets": ["shares", "profit", "bank", "rates"], "football": ["goal", "match", "league", "coach"],
          "gadgets": ["phone", "chip", "software", "screen"]}
FILLER = ["the", "a", "said", "on", "with", "year", "new", "people"]


@pytest.fixture(scope="module")
def example():
    load_example("char_rnn")
    return load_example("bert_classifier")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """20 articles per topic, 6 to 30 words each: filler words and a few of the topic's own words, latin-1."""
    root = tmp_path_factory.mktemp("news")
    rng = np.random.default_rng(0)
    for topic, words in TOPICS.items():
        (root / topic).mkdir()
        for number in range(20):
            length = int(rng.integers(6, 31))
            text = " ".join(rng.choice(FILLER + words, length).tolist()).capitalize() + ". Caf\xe9."
            (root / topic / f"{number:03d}.txt").write_bytes(text.encode("latin-1"))
    return root


def arguments(data_dir: Path, checkpoint_dir: Path, *extra: str) -> list[str]:
    return ["--data-dir", str(data_dir), "--checkpoint-dir", str(checkpoint_dir), "--batch-size", "8",
            "--max-length", "24", *extra]


def test_trains_to_a_high_test_accuracy_and_checkpoints(example, data_dir, tmp_path, capsys):
    accuracy = example.main(arguments(data_dir, tmp_path / "ckpt", "--epochs", "6", "--lr", "0.002"))
    output = capsys.readouterr().out
    last = output.strip().splitlines()[-1]
    match = re.fullmatch(r"test accuracy: (\d{1,3}\.\d\d)%", last)
    assert match, f"last line {last!r} is not 'test accuracy: NN.NN%'"
    assert float(match.group(1)) == pytest.approx(accuracy, abs=0.005)
    assert "48 training and 12 test articles, 3 classes ['football', 'gadgets', 'markets']" in output
    assert accuracy >= 75.0, "topic words make the classes easy to tell apart"
    checkpoint = tinydl.load(tmp_path / "ckpt" / "last.tdl")
    assert checkpoint["epoch"] == 6 and checkpoint["classes"] == ["football", "gadgets", "markets"]
    shapes = {name: tuple(value.shape) for name, value in checkpoint["model"].items()}
    vocab = tinydl.data.WordVocab.from_state_dict(checkpoint["vocab"])
    assert shapes["token_embedding.weight"] == (len(vocab), 128)
    assert shapes["position_embedding.weight"] == (24, 128)
    assert shapes["cls_token"] == (1, 1, 128)
    assert shapes["encoder.layers.1.self_attn.in_proj_weight"] == (384, 128)
    assert shapes["head.weight"] == (3, 128)


def test_padding_does_not_change_the_prediction(example):
    """An article padded to a longer batch gets the same logits as alone: padded keys are never attended to."""
    tinydl.manual_seed(0)
    for pooling in ("cls", "mean"):
        model = example.BertClassifier(30, 4, example.Recipe(d_model=16, max_length=12), pooling)
        model.eval()
        ids = np.array([[5, 9, 3, 7, 0, 0, 0], [4, 4, 8, 2, 6, 11, 13]])
        padding = ids == 0
        with tinydl.no_grad():
            together = model(tinydl.tensor(ids), tinydl.tensor(padding)).numpy()
            alone = model(tinydl.tensor(ids[:1, :4]), tinydl.tensor(padding[:1, :4])).numpy()
        np.testing.assert_allclose(together[:1], alone, rtol=1e-5, atol=1e-6)


def test_split_is_stratified_and_fixed_by_the_split_seed(example, data_dir):
    recipe = example.Recipe(max_length=24)
    first = example.prepare_data(str(data_dir), recipe, split_seed=0)
    again = example.prepare_data(str(data_dir), recipe, split_seed=0)
    other = example.prepare_data(str(data_dir), recipe, split_seed=1)
    assert np.bincount(first.test.labels).tolist() == [4, 4, 4]
    assert [s.tolist() for s in first.test.sequences] == [s.tolist() for s in again.test.sequences]
    assert [s.tolist() for s in first.test.sequences] != [s.tolist() for s in other.test.sequences]
    assert max(len(s) for s in first.train.sequences) == 23          # room for the [CLS] token


def test_resume_continues_after_the_last_complete_epoch(example, data_dir, tmp_path, capsys, monkeypatch):
    options = ("--epochs", "2")
    real_save = example.save_checkpoint

    def save_then_crash(directory, state):
        real_save(directory, state)
        raise KeyboardInterrupt("killed after the first epoch's checkpoint")

    monkeypatch.setattr(example, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        example.main(arguments(data_dir, tmp_path / "ckpt", *options))
    monkeypatch.setattr(example, "save_checkpoint", real_save)
    capsys.readouterr()
    example.main(arguments(data_dir, tmp_path / "ckpt", *options, "--resume"))
    output = capsys.readouterr().out
    assert "resumed from" in output and "epoch 1/2:" not in output and "epoch 2/2:" in output
    assert len(tinydl.load(tmp_path / "ckpt" / "last.tdl")["history"]["test_acc"]) == 2
    with pytest.raises(ValueError, match="pooling: checkpoint 'mean', now 'cls'"):
        example.main(arguments(data_dir, tmp_path / "ckpt", *options, "--pooling", "cls", "--resume"))


def test_help_and_missing_data(example, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        example.main(["--help"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    for option in ("--data-dir", "--pooling", "--device", "--seed", "--resume", "--split-seed"):
        assert option in usage
    with pytest.raises(SystemExit) as exit_info:
        example.main(["--data-dir", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    assert "nowhere is not a directory" in capsys.readouterr().err
