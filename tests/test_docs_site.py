"""The documentation site builds with ``mkdocs build --strict`` (mkdocs.yml over docs/, with the API reference
generated from the docstrings): a broken link, a missing page or a docstring mkdocstrings cannot render fails."""
import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[1]


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None,
                    reason="mkdocs and mkdocstrings are not installed: pip install -e '.[docs]' to build the site")
def test_docs_site_builds_strictly(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    api = (site / "api" / "index.html").read_text()
    for name in ("register_hook", "register_full_backward_hook", "export_chrome_trace", "trace_backward"):
        assert name in api, f"the API reference lacks {name}"
    assert (site / "inside" / "index.html").exists()
