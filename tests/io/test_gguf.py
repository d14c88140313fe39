"""tinydl.io.gguf: metadata and tensors of files written by a from-the-spec writer (gguf_writer.py), the vectorised
dequantisers against naive per-value loops and against the `gguf` package's own dequantize, and the real SmolLM2
file. Bad files: test_gguf_errors.py."""
import math

import numpy as np
import pytest

from gguf_writer import (ARRAY, BF16, BLOCK_BYTES, BOOL, F16, F32, F64, FLOAT32, FLOAT64, INT8, INT16, INT32,
                         INT64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, STRING, UINT8, UINT16, UINT32, UINT64, gguf_bytes,
                         naive_dequantize, random_blocks)
from tinydl.io.gguf import GGML_TYPES, GGUFFile

QUANTISED = {"Q8_0": Q8_0, "Q4_0": Q4_0, "Q4_1": Q4_1, "Q5_0": Q5_0, "Q5_1": Q5_1}

METADATA = [
    ("general.architecture", STRING, "llama"), ("u8", UINT8, 255), ("i8", INT8, -128), ("u16", UINT16, 65535),
    ("i16", INT16, -32768), ("u32", UINT32, 2 ** 32 - 1), ("i32", INT32, -2 ** 31), ("f32", FLOAT32, 0.5),
    ("bool", BOOL, True), ("u64", UINT64, 2 ** 64 - 1), ("i64", INT64, -2 ** 63), ("f64", FLOAT64, math.pi),
    ("unicode", STRING, "Ġhello ✓ 日本"), ("tokens", ARRAY, (STRING, ["<s>", "a", "", "ĠĠ"])),
    ("scores", ARRAY, (FLOAT32, [0.0, -1.5, 2.25])), ("types", ARRAY, (INT32, [1, 3, 6])),
    ("nested", ARRAY, (ARRAY, [(UINT8, [1, 2]), (UINT8, [])])), ("empty", ARRAY, (UINT32, [])),
]


def write(tmp_path, metadata, tensors, **options):
    path = tmp_path / "model.gguf"
    path.write_bytes(gguf_bytes(metadata, tensors, **options))
    return path


def test_metadata_of_every_value_type_reads_back(tmp_path):
    with GGUFFile(write(tmp_path, METADATA, [])) as file:
        assert file.version == 3 and file.tensors == {}
        expected = {key: (list(map(lambda e: e[1], content[1])) if key == "nested" else
                          list(content[1]) if kind == ARRAY else content) for key, kind, content in METADATA}
        assert file.metadata == expected


@pytest.mark.parametrize("type_name", list(QUANTISED))
def test_quantised_blocks_dequantise_as_the_naive_loop_does(tmp_path, type_name):
    rng = np.random.default_rng(list(QUANTISED).index(type_name))
    raw = random_blocks(QUANTISED[type_name], n_blocks=3 * 4, rng=rng)  # 3 rows of 4 blocks of 32
    path = write(tmp_path, [], [("w", [128, 3], QUANTISED[type_name], raw)])
    with GGUFFile(path) as file:
        assert file.tensors["w"].shape == (3, 128) and file.tensors["w"].type_name == type_name
        ours = file.tensor("w")
    assert ours.dtype == np.float32
    expected = np.array(naive_dequantize(QUANTISED[type_name], raw)).reshape(3, 128)
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("type_id, stored", [(F32, "<f4"), (F16, "<f2"), (F64, "<f8")], ids=["F32", "F16", "F64"])
def test_float_tensors_read_exactly_with_dims_reversed(tmp_path, type_id, stored):
    values = np.random.default_rng(type_id).standard_normal((2, 3, 5)).astype(stored)
    scalar = values[0, 0, :1]
    path = write(tmp_path, [], [("a", [5, 3, 2], type_id, values.tobytes()), ("b", [], type_id, scalar.tobytes())])
    with GGUFFile(path) as file:
        np.testing.assert_array_equal(file.tensor("a"), values.astype(np.float32))
        assert file.tensor("b").shape == () and file.tensor("b") == np.float32(values[0, 0, 0])


def test_bf16_is_the_upper_half_of_a_float32(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, np.inf, 0.0, 1e30], dtype=np.float32)
    upper_halves = (values.view(np.uint32) >> 16).astype("<u2")
    with GGUFFile(write(tmp_path, [], [("w", [6], BF16, upper_halves.tobytes())])) as file:
        np.testing.assert_array_equal(file.tensor("w"), (upper_halves.astype(np.uint32) << 16).view(np.float32))


def test_tensors_sit_at_aligned_offsets_after_a_custom_alignment(tmp_path):
    a, b = np.arange(3, dtype="<f4"), np.arange(5, dtype="<f4") * 2
    metadata = [("general.alignment", UINT32, 64)]
    path = write(tmp_path, metadata, [("a", [3], F32, a.tobytes()), ("b", [5], F32, b.tobytes())], alignment=64)
    with GGUFFile(path) as file:
        assert file.alignment == 64
        assert file.tensors["a"].offset % 64 == 0 and file.tensors["b"].offset - file.tensors["a"].offset == 64
        np.testing.assert_array_equal(file.tensor("b"), b)


# --------------------------------------------------------------------------------- the gguf package's view
def test_the_ggml_type_table_matches_the_gguf_package():
    gguf = pytest.importorskip("gguf", reason="the reference `gguf` package is absent")
    for quant_type, (block_size, block_bytes) in gguf.GGML_QUANT_SIZES.items():
        if int(quant_type) in GGML_TYPES:
            ours = GGML_TYPES[int(quant_type)]
            assert (ours.name, ours.block_size, ours.block_bytes) == (quant_type.name, block_size, block_bytes)


@pytest.mark.parametrize("type_name", list(QUANTISED))
def test_quantised_by_the_gguf_package_dequantised_as_it_does(tmp_path, type_name):
    gguf = pytest.importorskip("gguf", reason="the reference `gguf` package is absent")
    quant_type = gguf.GGMLQuantizationType[type_name]
    weights = np.random.default_rng(7).standard_normal((16, 96)).astype(np.float32)
    weights[3] = 0.0  # an all-zero row: scale 0
    quantised = gguf.quants.quantize(weights, quant_type)
    writer = gguf.GGUFWriter(tmp_path / "w.gguf", arch="llama")
    writer.add_tensor("w", quantised, raw_shape=quantised.shape, raw_dtype=quant_type)
    writer.add_string("tokenizer.ggml.model", "gpt2")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with GGUFFile(tmp_path / "w.gguf") as file:
        assert file.metadata["general.architecture"] == "llama"
        assert file.metadata["tokenizer.ggml.model"] == "gpt2"
        np.testing.assert_array_equal(file.tensor("w"), gguf.quants.dequantize(quantised, quant_type))
        assert np.abs(file.tensor("w") - weights).max() < 0.3  # and it is close to what was quantised


def read_bytes(path, offset: int, count: int) -> bytes:
    with open(path, "rb") as file:
        file.seek(offset)
        return file.read(count)


def test_the_real_smollm2_file_dequantises_as_the_naive_loop_does(smollm2_gguf):
    with GGUFFile(smollm2_gguf) as file:
        assert file.metadata["llama.block_count"] == 30 and file.metadata["llama.embedding_length"] == 576
        assert len(file.metadata["tokenizer.ggml.tokens"]) == 49152
        assert file.tensors["token_embd.weight"].shape == (49152, 576)
        assert file.tensors["blk.0.attn_k.weight"].shape == (192, 576)  # [out, in] as PyTorch stores Linear weights
        for name, type_id in [("token_embd.weight", Q8_0), ("blk.7.ffn_up.weight", Q4_1)]:
            blocks = 3 * 576 // 32  # the first three rows
            raw = read_bytes(smollm2_gguf, file.tensors[name].offset, blocks * BLOCK_BYTES[type_id])
            expected = np.array(naive_dequantize(type_id, raw)).reshape(3, 576)
            np.testing.assert_allclose(file.tensor(name)[:3], expected, rtol=1e-6, atol=1e-6)
        norm = file.tensors["output_norm.weight"]
        np.testing.assert_array_equal(file.tensor("output_norm.weight"),
                                      np.frombuffer(read_bytes(smollm2_gguf, norm.offset, 576 * 4), "<f4"))


@pytest.mark.slow
def test_the_real_smollm2_file_reads_as_the_gguf_package_reads_it(smollm2_gguf):
    gguf = pytest.importorskip("gguf", reason="the reference `gguf` package is absent")
    reader = gguf.GGUFReader(smollm2_gguf)
    with GGUFFile(smollm2_gguf) as file:
        assert file.metadata["general.architecture"] == "llama"
        for key, field in reader.fields.items():
            if not key.startswith("GGUF."):
                assert file.metadata[key] == field.contents(), key
        assert list(file.tensors) == [tensor.name for tensor in reader.tensors]
        kinds = {}
        for tensor in reader.tensors:
            info = file.tensors[tensor.name]
            assert info.type_name == tensor.tensor_type.name and info.offset == tensor.data_offset, tensor.name
            kinds[info.type_name] = kinds.get(info.type_name, 0) + 1
            expected = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
            np.testing.assert_array_equal(file.tensor(tensor.name), expected, err_msg=tensor.name)
    assert kinds == {"Q8_0": 1, "Q4_1": 210, "F32": 61}
