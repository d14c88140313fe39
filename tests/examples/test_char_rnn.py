"""The character RNN example end to end on a tiny generated text (seconds per run)."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from example_scripts import load_example

import tinydl

FINAL_LINE = re.compile(r"validation loss: (\d+\.\d{4}) nats \((\d+\.\d{3}) bits/char\)")
TINY = ("--hidden-size", "24", "--seq-len", "12", "--batch-size", "4", "--sample-length", "20")


@pytest.fixture(scope="module")
def example():
    return load_example("char_rnn")


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    """2,000 characters of a tiny grammar: words from a short list, separated by spaces and newlines."""
    rng = np.random.default_rng(0)
    words = ["to", "be", "or", "not", "that", "is", "the", "question"]
    text = " ".join(rng.choice(words, 400).tolist()).replace("question ", "question\n")
    path = tmp_path_factory.mktemp("text") / "tiny.txt"
    path.write_text(text, encoding="utf-8")
    return path


def arguments(text_file: Path, checkpoint_dir: Path, *extra: str) -> list[str]:
    return ["--text", str(text_file), "--checkpoint-dir", str(checkpoint_dir), *TINY, *extra]


def final_loss(output: str) -> tuple[float, float]:
    last = output.strip().splitlines()[-1]
    match = FINAL_LINE.fullmatch(last)
    assert match, f"last line {last!r} is not 'validation loss: X.XXXX nats (Y.YYY bits/char)'"
    return float(match.group(1)), float(match.group(2))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_each_cell_trains_and_reports_nats_and_bits(example, text_file, tmp_path, capsys, cell):
    nats = example.main(arguments(text_file, tmp_path / "ckpt", "--cell", cell, "--max-steps", "40",
                                  "--lr", "0.01"))
    output = capsys.readouterr().out
    printed_nats, printed_bits = final_loss(output)
    assert printed_nats == pytest.approx(nats, abs=5e-5)
    assert printed_bits == pytest.approx(nats / math.log(2), abs=5e-4)
    vocab_size = len(set(text_file.read_text()[:1800])) + 1
    assert nats < 0.75 * math.log(vocab_size), "40 steps should beat a uniform guess over the symbols by far"
    checkpoint = tinydl.load(tmp_path / "ckpt" / "last.tdl")
    assert checkpoint["step"] == 40 and checkpoint["config"]["cell"] == cell
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    shapes = {name: tuple(value.shape) for name, value in checkpoint["model"].items()}
    assert shapes == {"embedding.weight": (vocab_size, 128), "rnn.weight_ih_l0": (gates * 24, 128),
                      "rnn.weight_hh_l0": (gates * 24, 24), "rnn.bias_ih_l0": (gates * 24,),
                      "rnn.bias_hh_l0": (gates * 24,), "head.weight": (vocab_size, 24), "head.bias": (vocab_size,)}
    vocab = tinydl.data.CharVocab.from_state_dict(checkpoint["vocab"])
    assert len(vocab) == vocab_size


def test_resume_mid_epoch_matches_a_run_straight_through(example, text_file, tmp_path, capsys, monkeypatch):
    options = ("--max-steps", "8", "--checkpoint-every", "3", "--sample-length", "0")
    straight = example.main(arguments(text_file, tmp_path / "straight", *options))

    real_save = example.save_checkpoint

    def save_then_crash(directory, state):
        real_save(directory, state)
        raise KeyboardInterrupt("killed after the step-3 checkpoint")

    monkeypatch.setattr(example, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        example.main(arguments(text_file, tmp_path / "resumed", *options))
    monkeypatch.setattr(example, "save_checkpoint", real_save)
    saved = tinydl.load(tmp_path / "resumed" / "last.tdl")
    assert saved["step"] == 3 and len(saved["state"]) == 2      # the LSTM's (h, c), carried into the next window
    capsys.readouterr()

    resumed = example.main(arguments(text_file, tmp_path / "resumed", *options, "--resume"))
    assert "resumed from" in capsys.readouterr().out
    assert resumed == straight
    final_straight = tinydl.load(tmp_path / "straight" / "last.tdl")["model"]
    final_resumed = tinydl.load(tmp_path / "resumed" / "last.tdl")["model"]
    for name, value in final_straight.items():
        np.testing.assert_array_equal(final_resumed[name].numpy(), value.numpy(), err_msg=name)


def test_resume_refuses_other_settings(example, text_file, tmp_path):
    example.main(arguments(text_file, tmp_path / "ckpt", "--max-steps", "2", "--sample-length", "0"))
    with pytest.raises(ValueError, match="cell: checkpoint 'lstm', now 'gru'"):
        example.main(arguments(text_file, tmp_path / "ckpt", "--max-steps", "2", "--cell", "gru", "--resume"))


def test_sampling_follows_the_temperature(example, text_file):
    corpus = example.load_corpus(str(text_file))
    recipe = example.Recipe(hidden_size=16)
    tinydl.manual_seed(0)
    model = example.CharRNN(len(corpus.vocab), "gru", recipe)
    greedy = [example.sample(model, corpus.vocab, "to ", 30, 0.0, "cpu", np.random.default_rng(seed))
              for seed in (1, 2)]
    assert greedy[0] == greedy[1] and greedy[0].startswith("to ") and len(greedy[0]) == 33
    hot = {example.sample(model, corpus.vocab, "to ", 30, 1.5, "cpu", np.random.default_rng(seed))
           for seed in range(3)}
    assert len(hot) == 3
    assert corpus.vocab.unknown not in "".join(hot)


def test_draw_matches_the_softmax_at_the_temperature(example):
    logits = np.array([5.0, 0.0, 1.0, 2.0])    # id 0 is the unknown symbol: never drawn, whatever its score
    rng = np.random.default_rng(0)
    draws = np.array([example.draw(logits, 0.5, rng) for _ in range(4000)])
    expected = np.exp(logits[1:] / 0.5) / np.exp(logits[1:] / 0.5).sum()
    np.testing.assert_allclose(np.bincount(draws, minlength=4)[1:] / 4000, expected, atol=0.03)
    assert example.draw(logits, 0.0, rng) == 3


def test_lr_factor_warms_up_then_decays_to_a_tenth(example):
    factors = [example.lr_factor(step, 100, 10) for step in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0) and factors[100] == pytest.approx(0.1)
    assert factors[55] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))


def test_help_and_empty_text(example, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        example.main(["--help"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    for option in ("--cell", "--text", "--temperature", "--device", "--seed", "--resume", "--max-steps"):
        assert option in usage
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"empty\.txt is empty"):
        example.main(["--text", str(empty)])
