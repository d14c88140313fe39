"""The character GPT example end to end on a tiny generated text (seconds per run)."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from example_scripts import load_example

import tinydl

FINAL_LINE = re.compile(r"validation loss: (\d+\.\d{4}) nats \((\d+\.\d{3}) bits/char\)")
TINY = ("--d-model", "32", "--layers", "2", "--seq-len", "16", "--batch-size", "4", "--sample-length", "10")


@pytest.fixture(scope="module")
def example():
    load_example("char_rnn")
    return load_example("gpt_char")


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    rng = np.random.default_rng(1)
    words = ["to", "be", "or", "not", "that", "is", "the", "question"]
    path = tmp_path_factory.mktemp("text") / "tiny.txt"
    path.write_text(" ".join(rng.choice(words, 400).tolist()), encoding="utf-8")
    return path


def arguments(text_file: Path, checkpoint_dir: Path, *extra: str) -> list[str]:
    return ["--text", str(text_file), "--checkpoint-dir", str(checkpoint_dir), *TINY, *extra]


def test_trains_reports_nats_and_bits_and_checkpoints(example, text_file, tmp_path, capsys):
    nats = example.main(arguments(text_file, tmp_path / "ckpt", "--max-steps", "40", "--lr", "0.003"))
    last = capsys.readouterr().out.strip().splitlines()[-1]
    match = FINAL_LINE.fullmatch(last)
    assert match, f"last line {last!r} is not 'validation loss: X.XXXX nats (Y.YYY bits/char)'"
    assert float(match.group(1)) == pytest.approx(nats, abs=5e-5)
    assert float(match.group(2)) == pytest.approx(nats / math.log(2), abs=5e-4)
    vocab_size = len(set(text_file.read_text()[:1800])) + 1
    assert nats < 0.8 * math.log(vocab_size), "40 steps should beat a uniform guess over the symbols by far"
    checkpoint = tinydl.load(tmp_path / "ckpt" / "last.tdl")
    shapes = {name: tuple(value.shape) for name, value in checkpoint["model"].items()}
    assert shapes["token_embedding.weight"] == (vocab_size, 32)
    assert shapes["position_embedding.weight"] == (16, 32)
    assert shapes["blocks.1.self_attn.in_proj_weight"] == (96, 32)
    assert shapes["blocks.1.linear1.weight"] == (512, 32)
    assert shapes["head.weight"] == (vocab_size, 32)
    assert "blocks.2.norm1.weight" not in shapes


def test_the_model_is_causal(example):
    """Changing the character at position t changes no logit before t, and some at or after it."""
    tinydl.manual_seed(0)
    model = example.GPT(12, example.Recipe(d_model=16, num_layers=2, context=10))
    model.eval()
    ids = np.random.default_rng(0).integers(1, 12, (1, 10))
    changed = ids.copy()
    changed[0, 6] = 1 + ids[0, 6] % 11
    with tinydl.no_grad():
        before, after = model(tinydl.tensor(ids)).numpy(), model(tinydl.tensor(changed)).numpy()
    np.testing.assert_array_equal(before[:, :6], after[:, :6])
    assert not np.allclose(before[:, 6:], after[:, 6:])
    with pytest.raises(ValueError, match="window of 11 characters is longer than the context of 10"):
        model(tinydl.tensor(np.ones((1, 11), dtype=np.int64)))


def test_resume_mid_epoch_matches_a_run_straight_through(example, text_file, tmp_path, capsys, monkeypatch):
    options = ("--max-steps", "6", "--checkpoint-every", "3", "--sample-length", "0")
    straight = example.main(arguments(text_file, tmp_path / "straight", *options))
    real_save = example.save_checkpoint

    def save_then_crash(directory, state):
        real_save(directory, state)
        raise KeyboardInterrupt("killed after the step-3 checkpoint")

    monkeypatch.setattr(example, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        example.main(arguments(text_file, tmp_path / "resumed", *options))
    monkeypatch.setattr(example, "save_checkpoint", real_save)
    assert tinydl.load(tmp_path / "resumed" / "last.tdl")["step"] == 3
    resumed = example.main(arguments(text_file, tmp_path / "resumed", *options, "--resume"))
    assert "resumed from" in capsys.readouterr().out
    assert resumed == straight


def test_sample_keeps_the_prompt_and_stays_in_the_vocabulary(example, text_file):
    corpus = example.load_corpus(str(text_file))
    tinydl.manual_seed(0)
    model = example.GPT(len(corpus.vocab), example.Recipe(d_model=16, num_layers=1, context=8))
    text = example.sample(model, corpus.vocab, "the ", 20, 1.0, "cpu", np.random.default_rng(0))
    assert text.startswith("the ") and len(text) == 24
    assert set(text) <= set(corpus.vocab.symbols[1:])


def test_help(example, capsys):
    with pytest.raises(SystemExit) as exit_info:
        example.main(["--help"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    for option in ("--text", "--temperature", "--device", "--seed", "--resume", "--max-steps", "--layers"):
        assert option in usage
