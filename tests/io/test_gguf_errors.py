"""Bad GGUF files raise GGUFError (a ValueError) naming the file, the tensor or key, and what was expected and
found; every truncation of a valid file and random mutations raise nothing else."""
import re
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gguf_writer import ARRAY, F32, Q4_0, Q4_K, Q8_0, STRING, UINT8, UINT32, gguf_bytes, random_blocks
from tinydl.io.gguf import GGUFError, GGUFFile

ONE_TENSOR = [("w", [4], F32, np.arange(4, dtype="<f4").tobytes())]


def small_file() -> bytes:
    rng = np.random.default_rng(0)
    return gguf_bytes([("general.architecture", STRING, "llama"), ("ids", ARRAY, (UINT32, [1, 2, 3]))],
                      [("a", [32, 2], Q4_0, random_blocks(Q4_0, 2, rng)), ("b", [3], F32, bytes(12))])


def nested_arrays(depth: int) -> tuple:
    """An array of an array of ... (``depth`` levels) of an empty uint8 array."""
    content = (UINT8, [])
    for _ in range(depth - 1):
        content = (ARRAY, [content])
    return content


BAD_FILES = {
    # name: (file bytes, regexes the message must contain)
    "bad magic": (b"GGML" + small_file()[4:], ["bad magic b'GGML'", "not a GGUF file"]),
    "version 1": (gguf_bytes([], [], version=1), ["version 1 is not supported", "versions 2, 3"]),
    "big-endian": (b"GGUF" + struct.pack(">I", 3) + gguf_bytes([], [])[8:], ["version 50331648",
                                                                            "big-endian"]),
    "too short": (b"GGUF\x03\x00", ["6 bytes, too short"]),
    "unknown value type": (gguf_bytes([], [])[:16] + struct.pack("<Q", 1) + struct.pack("<Q", 1) + b"k"
                           + struct.pack("<I", 13), ["metadata 'k' has unknown value type 13"]),
    "duplicate key": (gguf_bytes([("k", UINT8, 1), ("k", UINT8, 2)], []), ["metadata key 'k' appears twice"]),
    "alignment": (gguf_bytes([("general.alignment", UINT32, 12)], []), ["alignment must be a positive multiple "
                                                                        "of 8, found 12"]),
    "deep nesting": (gguf_bytes([("n", ARRAY, nested_arrays(10))], []),
                     [r"metadata 'n'\[0\].* nests arrays deeper than 8"]),
    "too many dims": (gguf_bytes([], [("w", [1, 1, 1, 1, 4], F32, bytes(16))]),
                      ["tensor 'w' has 5 dims", "at most 4"]),
    "misaligned": (gguf_bytes([], ONE_TENSOR, offsets=[4]), ["tensor 'w'", "offset 4 is not a multiple of the "
                                                                           "alignment 32"]),
    "partial block": (gguf_bytes([], [("w", [48, 2], Q8_0, bytes(34 * 3))]),
                      ["tensor 'w'", "rows of 48 values", "Q8_0 blocks of 32"]),
    "duplicate tensor": (gguf_bytes([], ONE_TENSOR * 2), ["tensor 'w' appears twice"]),
    "overlap": (gguf_bytes([], [("a", [16], F32, bytes(64)), ("b", [4], F32, bytes(16))], offsets=[0, 32]),
                ["tensor 'b' at bytes", "overlaps tensor 'a'"]),
    "data past the end": (gguf_bytes([], ONE_TENSOR)[:-4], ["tensor 'w' .F32, shape .4,..", "needs bytes",
                                                             "but the file has", "truncated"]),
    "header truncated": (gguf_bytes([("general.name", STRING, "a model")], [])[:60],
                         [r"truncated: metadata 'general.name' needs bytes \[56, 63\) but the file has 60 bytes"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_a_bad_file_raises_an_error_naming_the_file_and_the_problem(tmp_path, case):
    content, patterns = BAD_FILES[case]
    (tmp_path / "bad.gguf").write_bytes(content)
    with pytest.raises(GGUFError) as info:
        GGUFFile(tmp_path / "bad.gguf")
    message = str(info.value)
    for pattern in [r"GGUF file '.*bad\.gguf'", *patterns]:
        assert re.search(pattern, message), (pattern, message)


@pytest.mark.parametrize("type_id, type_name", [(Q4_K, "Q4_K"), (99, "unknown type id 99")])
def test_a_type_tinydl_cannot_dequantise_is_named_when_the_tensor_is_asked_for(tmp_path, type_id, type_name):
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes([], [("blk.0.ffn_up.weight", [256], type_id, bytes(144)), *ONE_TENSOR]))
    with GGUFFile(path) as file:  # the file opens; other tensors read
        np.testing.assert_array_equal(file.tensor("w"), np.arange(4))
        with pytest.raises(GGUFError, match=rf"m\.gguf': tensor 'blk.0.ffn_up.weight' has ggml type {type_name}, "
                                            r"which tinydl cannot dequantise; supported: F32, F16"):
            file.tensor("blk.0.ffn_up.weight")


def test_an_absent_tensor_or_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.gguf"):
        GGUFFile(tmp_path / "nothing.gguf")
    (tmp_path / "m.gguf").write_bytes(gguf_bytes([], ONE_TENSOR))
    with GGUFFile(tmp_path / "m.gguf") as file, pytest.raises(KeyError, match="no tensor 'v'.* it has 1: w"):
        file.tensor("v")
    with pytest.raises(ValueError, match=r"m\.gguf' is closed"):
        file.tensor("w")


def test_every_truncation_of_a_valid_file_is_refused(tmp_path):
    content = small_file()
    path = tmp_path / "cut.gguf"
    for length in range(len(content)):
        path.write_bytes(content[:length])
        with pytest.raises(GGUFError):
            GGUFFile(path)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_files_raise_only_gguf_errors(tmp_path_factory, data):
    mutated = bytearray(small_file())
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        position = data.draw(st.integers(0, len(mutated) - 1), label="position")
        mutated[position] = data.draw(st.integers(0, 255), label="byte")
    path = tmp_path_factory.mktemp("fuzz") / "mutated.gguf"
    path.write_bytes(bytes(mutated))
    try:
        with GGUFFile(path) as file:
            for name in file.keys():
                assert file.tensor(name).dtype == np.float32
    except GGUFError:
        pass
