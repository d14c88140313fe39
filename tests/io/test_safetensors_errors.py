"""Bad safetensors files and bad tensors to save: each raises SafetensorsError (a ValueError) whose message names
the file, the tensor, and what was expected and found; mutated and truncated files raise nothing else."""
import json
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinydl.io import safetensors as tst
from tinydl.io.safetensors import SafetensorsError

try:
    import safetensors.numpy as REFERENCE
except ImportError:
    REFERENCE = None


def write_raw(path, header, data: bytes = b"", declared_length: int | None = None):
    """A file with ``header`` (a dict, dumped as JSON, or raw bytes) and ``data``; the length field says
    ``declared_length`` when given."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    length = len(raw) if declared_length is None else declared_length
    path.write_bytes(length.to_bytes(8, "little") + raw + data)
    return path


def f32(begin, end, shape=(2,)):
    return {"dtype": "F32", "shape": list(shape), "data_offsets": [begin, end]}


BAD_FILES = {
    # name: (header, data, declared length or None, regexes the message must contain)
    "header longer than the limit": (b"{}", b"", 10 ** 9, [r"claims 1000000000 bytes", "limit"]),
    "header past the end of the file": (b"{}", b"", 50, [r"claims 50 bytes", r"only 2", "truncated"]),
    "not json": (b"{not json", b"", None, ["not valid UTF-8 JSON"]),
    "not utf-8": (b'{"\xff": 1}', b"", None, ["not valid UTF-8"]),
    "not an object": (b"[1, 2]", b"", None, ["must be a JSON object starting with"]),
    "entry not an object": ({"w": 3}, b"", None, ["tensor 'w'", "must be a JSON object, found 3"]),
    "entry lacks keys": ({"w": {"dtype": "F32"}}, b"", None, ["tensor 'w'", "lacks", "data_offsets", "shape"]),
    "unknown dtype": ({"w": {**f32(0, 8), "dtype": "F7"}}, bytes(8), None, ["tensor 'w'", "unknown dtype 'F7'",
                                                                           "supported: F64"]),
    "float8": ({"w": {**f32(0, 2), "dtype": "F8_E4M3"}}, bytes(2), None, ["tensor 'w'", "F8_E4M3",
                                                                         "not supported"]),
    "negative shape": ({"w": f32(0, 8, (-2,))}, bytes(8), None, ["tensor 'w'", "non-negative integers",
                                                                 r"\[-2\]"]),
    "float shape": ({"w": f32(0, 8, (2.0,))}, bytes(8), None, ["tensor 'w'", "non-negative integers"]),
    "bool shape": ({"w": f32(0, 4, (True,))}, bytes(4), None, ["tensor 'w'", "non-negative integers"]),
    "three offsets": ({"w": {**f32(0, 8), "data_offsets": [0, 4, 8]}}, bytes(8), None,
                      ["tensor 'w'", r"\[begin, end\]", r"\[0, 4, 8\]"]),
    "end before begin": ({"w": f32(8, 0)}, bytes(8), None, ["tensor 'w'", r"\[8, 0\]"]),
    "size does not match shape": ({"w": f32(0, 12, (2, 2))}, bytes(12), None,
                                  ["tensor 'w'", "F32", r"\[2, 2\]", "need 16 bytes", r"\[0, 12\] span 12"]),
    "offsets past the end": ({"w": f32(0, 8)}, bytes(4), None,
                             ["tensor 'w'", r"\[0, 8\)", "only 4 bytes", "truncated"]),
    "overlap": ({"a": f32(0, 8), "b": f32(4, 12)}, bytes(12), None,
                ["tensor 'b'", r"\[4, 12\)", "overlaps tensor 'a'", r"\[0, 8\)"]),
    "hole": ({"a": f32(0, 8), "b": f32(12, 20)}, bytes(20), None,
             ["hole of 4 bytes after tensor 'a'", "tensor 'b' begins at 12, expected 8"]),
    "hole at the start": ({"a": f32(4, 12)}, bytes(12), None, ["hole of 4 bytes at the start", "tensor 'a'"]),
    "trailing bytes": ({"a": f32(0, 8)}, bytes(11), None, ["end at data byte 8", "11 bytes of data",
                                                           "3 bytes belong to no tensor"]),
    "duplicate name": (b'{"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}, "a": {}}', b"", None,
                       ["'a' appears twice"]),
    "metadata not strings": ({"__metadata__": {"epoch": 3}}, b"", None, ["__metadata__ must map strings"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_a_bad_file_raises_an_error_naming_the_file_and_the_problem(tmp_path, case):
    header, data, declared, patterns = BAD_FILES[case]
    path = write_raw(tmp_path / "bad.safetensors", header, data, declared)
    with pytest.raises(SafetensorsError) as info:
        tst.load_file(path)
    message = str(info.value)
    for pattern in [r"safetensors file '.*bad\.safetensors'", *patterns]:
        assert re.search(pattern, message), (pattern, message)


def test_a_file_shorter_than_the_length_field_is_refused(tmp_path):
    (tmp_path / "short.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(SafetensorsError, match=r"short\.safetensors.*2 bytes, too short"):
        tst.load_file(tmp_path / "short.safetensors")


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.safetensors"):
        tst.load_file(tmp_path / "nothing.safetensors")


def test_asking_for_an_absent_tensor_lists_what_is_there(tmp_path):
    tst.save_file({"encoder.weight": np.ones(2, np.float32)}, tmp_path / "t.safetensors")
    with tst.SafetensorsFile(tmp_path / "t.safetensors") as file, pytest.raises(KeyError, match="encoder.weight"):
        file.tensor("decoder.weight")
    with pytest.raises(ValueError, match=r"t\.safetensors' is closed"):
        file.tensor("encoder.weight")


@pytest.mark.parametrize("tensors, metadata, pattern", [
    ({"w": np.ones(2, np.complex64)}, None, r"tensor 'w' has dtype complex64.*supported"),
    ({"w": np.array(["a"], dtype=object)}, None, r"tensor 'w' has dtype object"),
    ({3: np.ones(2)}, None, r"names must be strings.*found 3"),
    ({"__metadata__": np.ones(2)}, None, r"other than '__metadata__'"),
    ({"w": np.ones(2)}, {"epoch": 3}, r"metadata must map strings to strings"),
], ids=["complex", "object", "int name", "reserved name", "metadata"])
def test_saving_what_safetensors_cannot_hold_is_refused_and_writes_nothing(tmp_path, tensors, metadata, pattern):
    with pytest.raises(SafetensorsError, match=pattern):
        tst.save_file(tensors, tmp_path / "t.safetensors", metadata=metadata)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ fuzzing
def valid_file_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "valid.safetensors"
    tst.save_file({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.arange(3, dtype=np.int16),
                   "c": np.ones((), np.bool_)}, path, metadata={"m": "v"})
    return path.read_bytes()


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_and_truncated_files_raise_only_safetensors_errors(tmp_path_factory, data):
    original = valid_file_bytes(tmp_path_factory)
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(0, 4), label="mutations")):
        position = data.draw(st.integers(0, len(mutated) - 1), label="position")
        mutated[position] = data.draw(st.integers(0, 255), label="byte")
    mutated = mutated[:data.draw(st.integers(0, len(mutated)), label="kept bytes")]
    path = tmp_path_factory.mktemp("fuzz") / "mutated.safetensors"
    path.write_bytes(bytes(mutated))
    try:
        loaded = tst.load_file(path)
    except SafetensorsError:
        return
    if REFERENCE is None:  # without the reference package, only "no other exception" is checked
        return
    expected = REFERENCE.load_file(str(path))  # what we accept, the reference accepts and reads the same way
    assert sorted(loaded) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(loaded[name], expected[name])
