"""A minimal GGUF writer for the tests, written from the format description (struct only, no gguf package), and
naive per-element dequantisers (one block at a time, Python loops) to check tinydl's vectorised ones against."""
from __future__ import annotations

import struct
from typing import Any

import numpy as np

# value type codes of GGUF metadata
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
_SCALAR_FORMATS = {UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i", FLOAT32: "<f",
                   BOOL: "<?", UINT64: "<Q", INT64: "<q", FLOAT64: "<d"}
# ggml type ids used here
F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, BF16, F64 = 0, 1, 2, 3, 6, 7, 8, 12, 30, 28
BLOCK_BYTES = {Q4_0: 18, Q4_1: 20, Q5_0: 22, Q5_1: 24, Q8_0: 34}


def string(text: str | bytes) -> bytes:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def value(value_type: int, content: Any) -> bytes:
    if value_type in _SCALAR_FORMATS:
        return struct.pack(_SCALAR_FORMATS[value_type], content)
    if value_type == STRING:
        return string(content)
    element_type, elements = content
    return struct.pack("<IQ", element_type, len(elements)) + b"".join(value(element_type, e) for e in elements)


def gguf_bytes(metadata: list[tuple[str, int, Any]], tensors: list[tuple[str, list[int], int, bytes]], *,
               magic: bytes = b"GGUF", version: int = 3, alignment: int = 32,
               offsets: list[int] | None = None) -> bytes:
    """A GGUF file: ``metadata`` as (key, value type, value), ``tensors`` as (name, dims innermost first,
    ggml type id, raw bytes). Tensor data are placed one after another at aligned offsets unless ``offsets``
    gives them; no padding follows the last tensor."""
    if offsets is None:
        offsets, position = [], 0
        for _, _, _, raw in tensors:
            offsets.append(position)
            position += -(-len(raw) // alignment) * alignment
    header = magic + struct.pack("<IQQ", version, len(tensors), len(metadata))
    header += b"".join(string(key) + struct.pack("<I", value_type) + value(value_type, content)
                       for key, value_type, content in metadata)
    for (name, dims, type_id, _), offset in zip(tensors, offsets):
        header += string(name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, type_id, offset)
    data = bytearray()
    for (_, _, _, raw), offset in zip(tensors, offsets):
        data.extend(bytes(max(0, offset + len(raw) - len(data))))
        data[offset:offset + len(raw)] = raw
    return header + bytes(-len(header) % alignment) + bytes(data)


def random_blocks(type_id: int, n_blocks: int, rng: np.random.Generator) -> bytes:
    """Random quantised blocks: random bytes everywhere, then finite float16 scales (d, and m for Q4_1/Q5_1)."""
    blocks = rng.integers(0, 256, size=(n_blocks, BLOCK_BYTES[type_id]), dtype=np.uint8)
    scale_fields = 2 if type_id in (Q4_1, Q5_1) else 1
    scales = rng.standard_normal((n_blocks, scale_fields)).astype("<f2")
    blocks[:, :2 * scale_fields] = scales.view(np.uint8)
    return blocks.tobytes()


def naive_dequantize(type_id: int, raw: bytes) -> list[float]:
    """Dequantise block by block, value by value, straight from the block layouts of the ggml sources."""
    size, values = BLOCK_BYTES[type_id], []
    for start in range(0, len(raw), size):
        block = raw[start:start + size]
        if type_id == Q8_0:
            (d,), q = struct.unpack("<e", block[:2]), struct.unpack("<32b", block[2:])
            values += [d * qi for qi in q]
            continue
        d, m = struct.unpack("<ee", block[:4]) if type_id in (Q4_1, Q5_1) else (*struct.unpack("<e", block[:2]), 0)
        scales = 4 if type_id in (Q4_1, Q5_1) else 2
        qh = struct.unpack("<I", block[scales:scales + 4])[0] if type_id in (Q5_0, Q5_1) else 0
        qs = block[scales + (4 if type_id in (Q5_0, Q5_1) else 0):]
        offset = {Q4_0: 8, Q4_1: 0, Q5_0: 16, Q5_1: 0}[type_id]
        for i in range(32):
            nibble = qs[i] & 0x0F if i < 16 else qs[i - 16] >> 4
            fifth_bit = (qh >> i) & 1
            values.append(d * (nibble + 16 * fifth_bit - offset) + m)
    return values
