"""The worked examples in docs/*.md run: each file's ```python blocks are executed in order, in one namespace.

A block that needs what a test machine lacks (a real dataset, a GPU) is fenced ```python no-run and skipped.
"""
import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).parents[1] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_doc_examples_run(page, capsys):
    namespace = {"__name__": f"docs.{page.stem}"}
    for number, block in enumerate(BLOCK.findall(page.read_text()), start=1):
        try:
            exec(compile(block, f"{page.name} (block {number})", "exec"), namespace)
        except Exception as error:  # pragma: no cover - the message is the point
            pytest.fail(f"{page.name}, python block {number} failed: {error!r}\n{block}")
    output = capsys.readouterr().out
    assert "False" not in output.split(), f"{page.name}: a check printed False:\n{output}"
