"""Backend hygiene: ops do their array maths through the inputs' array module, never through ``numpy`` itself.

The check reads the source of tinydl/functional and tinydl/nn: any use of the ``numpy`` module other than dtype
names and type checks would run on the CPU even for CuPy inputs (or fail), so it is reported with file and line.
"""
import ast
import pathlib

import pytest

import tinydl

PACKAGE = pathlib.Path(tinydl.__file__).parent
CHECKED = ["functional", "nn"]
# what may be taken from numpy: dtypes and scalar types, type checks and dtype arithmetic (no array maths)
ALLOWED = {"dtype", "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool_",
           "ndarray", "generic", "floating", "integer", "number", "issubdtype", "result_type", "ndim", "iinfo",
           "finfo", "pi", "e", "inf", "nan", "broadcast_shapes"}


def numpy_uses(path: pathlib.Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names if a.name == "numpy"}
        elif isinstance(node, ast.ImportFrom) and node.module == "numpy":
            for alias in node.names:
                if alias.name not in ALLOWED:
                    yield node.lineno, f"from numpy import {alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            if node.attr not in ALLOWED:
                yield node.lineno, f"{node.value.id}.{node.attr}"


def sources():
    for folder in CHECKED:
        yield from sorted((PACKAGE / folder).rglob("*.py"))


@pytest.mark.parametrize("path", list(sources()), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_direct_numpy_array_maths(path):
    offenders = [f"{path.relative_to(PACKAGE)}:{line}: {use}" for line, use in numpy_uses(path)]
    assert not offenders, "use get_array_module(x) instead of numpy for array maths:\n" + "\n".join(offenders)


def test_the_checker_finds_a_direct_numpy_call(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy as np\n\ndef f(x):\n    return np.exp(x)\n")
    assert list(numpy_uses(bad)) == [(4, "np.exp")]
