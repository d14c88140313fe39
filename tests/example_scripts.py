"""The example scripts (``examples/*.py``) as modules, for the tests: ``load_example("char_rnn")``.

This folder is on ``sys.path`` during the tests (pytest puts the directory of ``tests/conftest.py`` there), so any
test imports it as ``from example_scripts import load_example``.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str) -> ModuleType:
    """``examples/<name>.py`` imported as the module ``name``, once (later calls return the same module). It is
    registered in ``sys.modules`` before it runs: dataclasses resolve a module's annotations by its name, and an
    example that imports another (``from char_rnn import ...``) finds it there once that one is loaded."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
