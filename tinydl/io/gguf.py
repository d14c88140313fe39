"""GGUF: read llama.cpp's model files (metadata and tensors) with NumPy only, quantised blocks dequantised.

Layout of a file, version 2 or 3 (all integers little-endian)::

    magic          4 bytes  b"GGUF"
    version        uint32   2 or 3
    tensor_count   uint64
    kv_count       uint64
    kv_count x     key: string; value_type: uint32; value (see below)
    tensor_count x name: string; n_dims: uint32; dims: n_dims x uint64 (innermost first);
                   ggml_type: uint32; offset: uint64 (from the start of the data section)
    padding        zeros up to a multiple of ``general.alignment`` (default 32)
    data section   each tensor's bytes at its offset (a multiple of the alignment)

A string is a uint64 byte length and UTF-8 bytes. A value is, by type code: 0 uint8, 1 int8, 2 uint16, 3 int16,
4 uint32, 5 int32, 6 float32, 7 bool (one byte), 8 string, 9 array (element type uint32, count uint64, then the
elements), 10 uint64, 11 int64, 12 float64.

Dims are listed innermost first (ggml's ``ne[0]`` is the contiguous axis), so the NumPy shape is the reverse:
a PyTorch ``Linear`` weight [out, in] is stored with dims [in, out] and comes back with shape (out, in).

Quantised types store rows in blocks of 32 values (all multi-byte fields little-endian)::

    Q8_0  34 bytes: d float16, q int8[32]                          x[i] = d * q[i]
    Q4_0  18 bytes: d float16, qs uint8[16]                        x[i] = d * (nibble[i] - 8)
    Q4_1  20 bytes: d float16, m float16, qs uint8[16]             x[i] = d * nibble[i] + m
    Q5_0  22 bytes: d float16, qh uint32, qs uint8[16]             x[i] = d * (nibble[i] + 16 * bit_i(qh) - 16)
    Q5_1  24 bytes: d float16, m float16, qh uint32, qs uint8[16]  x[i] = d * (nibble[i] + 16 * bit_i(qh)) + m

where ``nibble[i]`` is the low four bits of ``qs[i]`` for i < 16 and the high four bits of ``qs[i - 16]`` for
i >= 16. Dequantisation here is vectorised over all blocks at once (a structured dtype per block layout); F32,
F16, BF16 and F64 are read as they are and returned as float32.

Every tensor's extent is checked against the file when it is opened (truncated files, out-of-range or misaligned
offsets and overlapping tensors raise :class:`GGUFError` naming the file and the tensor); a type tinydl cannot
dequantise raises when that tensor is asked for, naming the tensor and the type.

Note for Llama-family models: llama.cpp's converter permutes the rows of the query and key projections
(``attn_q``, ``attn_k``) so that rotary encoding can rotate adjacent pairs instead of the two halves of each head.
This reader returns the tensors exactly as stored; undoing the permutation is the model's job.
"""
from __future__ import annotations

import dataclasses
import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .safetensors import bfloat16_to_float32

__all__ = ["GGUFError", "GGUFFile", "TensorInfo", "GGML_TYPES", "dequantize"]

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
_MAX_ARRAY_NESTING = 8


class GGUFError(ValueError):
    """A file that is not a readable GGUF file, or a tensor tinydl cannot dequantise."""


# -------------------------------------------------------------------------------------- ggml tensor types
@dataclass(frozen=True)
class GGMLType:
    """A ggml tensor type: ``block_size`` values are stored in ``block_bytes`` bytes."""
    name: str
    block_size: int
    block_bytes: int


#: ggml type id -> (name, values per block, bytes per block), for every type ggml defines
GGML_TYPES: dict[int, GGMLType] = {type_id: GGMLType(*spec) for type_id, spec in {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
}.items()}

# Block layouts as NumPy structured dtypes: one record per block, fields as the ggml C structs lay them out.
_Q8_0 = np.dtype([("d", "<f2"), ("q", "i1", 32)])
_Q4_0 = np.dtype([("d", "<f2"), ("qs", "u1", 16)])
_Q4_1 = np.dtype([("d", "<f2"), ("m", "<f2"), ("qs", "u1", 16)])
_Q5_0 = np.dtype([("d", "<f2"), ("qh", "<u4"), ("qs", "u1", 16)])
_Q5_1 = np.dtype([("d", "<f2"), ("m", "<f2"), ("qh", "<u4"), ("qs", "u1", 16)])
_BIT_POSITIONS = np.arange(32, dtype=np.uint32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """(blocks, 16) packed bytes -> (blocks, 32) values 0..15: the low nibbles are values 0..15 of the block,
    the high nibbles values 16..31."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1)


def _scale(blocks: np.ndarray, field: str) -> np.ndarray:
    return blocks[field].astype(np.float32)[:, None]


def _high_bits(blocks: np.ndarray) -> np.ndarray:
    """(blocks,) uint32 -> (blocks, 32) the fifth bit of each value, already worth 16."""
    return (((blocks["qh"][:, None] >> _BIT_POSITIONS) & 1) << 4).astype(np.uint8)


def _dequantize_q8_0(blocks: np.ndarray) -> np.ndarray:
    return blocks["q"].astype(np.float32) * _scale(blocks, "d")


def _dequantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    return (_nibbles(blocks["qs"]).astype(np.float32) - 8) * _scale(blocks, "d")


def _dequantize_q4_1(blocks: np.ndarray) -> np.ndarray:
    return _nibbles(blocks["qs"]).astype(np.float32) * _scale(blocks, "d") + _scale(blocks, "m")


def _dequantize_q5_0(blocks: np.ndarray) -> np.ndarray:
    values = (_nibbles(blocks["qs"]) | _high_bits(blocks)).astype(np.float32) - 16
    return values * _scale(blocks, "d")


def _dequantize_q5_1(blocks: np.ndarray) -> np.ndarray:
    values = (_nibbles(blocks["qs"]) | _high_bits(blocks)).astype(np.float32)
    return values * _scale(blocks, "d") + _scale(blocks, "m")


#: type name -> (record dtype, function from records to a (records, values per record) float32 array)
_DEQUANTIZERS: dict[str, tuple[np.dtype, Callable[[np.ndarray], np.ndarray]]] = {
    "F32": (np.dtype("<f4"), lambda values: values.astype(np.float32)),
    "F16": (np.dtype("<f2"), lambda values: values.astype(np.float32)),
    "BF16": (np.dtype("<u2"), bfloat16_to_float32),
    "F64": (np.dtype("<f8"), lambda values: values.astype(np.float32)),
    "Q8_0": (_Q8_0, _dequantize_q8_0),
    "Q4_0": (_Q4_0, _dequantize_q4_0),
    "Q4_1": (_Q4_1, _dequantize_q4_1),
    "Q5_0": (_Q5_0, _dequantize_q5_0),
    "Q5_1": (_Q5_1, _dequantize_q5_1),
}


def dequantize(raw: bytes | np.ndarray, type_name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The float32 array of ``shape`` (NumPy order) stored in ``raw`` as ggml type ``type_name``."""
    if type_name not in _DEQUANTIZERS:
        raise GGUFError(f"dequantize: ggml type {type_name} is not supported; supported: "
                        f"{', '.join(_DEQUANTIZERS)}")
    record, function = _DEQUANTIZERS[type_name]
    return function(np.frombuffer(raw, dtype=record)).reshape(shape)


# -------------------------------------------------------------------------------------------- the reader
@dataclass(frozen=True)
class TensorInfo:
    """A tensor as the file describes it: ``shape`` in NumPy order (the file's dims reversed), its ggml type,
    and where its bytes lie (``offset`` from the start of the file, ``nbytes`` long)."""
    name: str
    shape: tuple[int, ...]
    type_name: str
    offset: int
    nbytes: int | None  # None for a type id ggml does not define


class _Cursor:
    """Reads the header sequentially from the mapped file, checking every read against the file's size.

    ``what`` names what is being read, for the error message; ``index`` (an array element's) is added to it only
    when there is an error to report, so reading 50,000 vocabulary strings formats no message.
    """

    _SCALARS = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?", 10: "<u8",
                11: "<i8", 12: "<f8"}
    _STRING, _ARRAY = 8, 9

    def __init__(self, source: str, buffer: mmap.mmap, size: int):
        self.source, self.buffer, self.size, self.position = source, memoryview(buffer), size, 0

    def take(self, count: int, what: str, index: int | None = None) -> memoryview:
        end = self.position + count
        if end > self.size:
            described = what if index is None else f"{what}[{index}]"
            raise GGUFError(f"{self.source}: truncated: {described} needs bytes [{self.position}, {end}) but the "
                            f"file has {self.size} bytes")
        view = self.buffer[self.position:end]
        self.position = end
        return view

    def integer(self, dtype: str, what: str) -> int:
        return int(np.frombuffer(self.take(np.dtype(dtype).itemsize, what), dtype=dtype)[0])

    def string(self, what: str, index: int | None = None) -> str:
        length = int.from_bytes(self.take(8, "the length of " + what, index), "little")
        return str(self.take(length, what, index), "utf-8", "surrogateescape")

    def value(self, value_type: int, what: str, depth: int = 0) -> Any:
        if value_type in self._SCALARS:
            dtype = np.dtype(self._SCALARS[value_type])
            return np.frombuffer(self.take(dtype.itemsize, what), dtype=dtype)[0].item()
        if value_type == self._STRING:
            return self.string(what)
        if value_type == self._ARRAY:
            if depth >= _MAX_ARRAY_NESTING:
                raise GGUFError(f"{self.source}: {what} nests arrays deeper than {_MAX_ARRAY_NESTING} levels")
            element_type = self.integer("<u4", f"the element type of {what}")
            count = self.integer("<u8", f"the length of {what}")
            if element_type in self._SCALARS:  # numeric arrays in one read
                dtype = np.dtype(self._SCALARS[element_type])
                return np.frombuffer(self.take(count * dtype.itemsize, what), dtype=dtype).tolist()
            if element_type == self._STRING:
                return [self.string(what, index) for index in range(count)]
            return [self.value(element_type, f"{what}[{index}]", depth + 1) for index in range(count)]
        raise GGUFError(f"{self.source}: {what} has unknown value type {value_type}")


class GGUFFile:
    """An open GGUF file: ``.metadata`` (key -> value), ``.tensors`` (name -> :class:`TensorInfo`, file order),
    ``.tensor(name)`` (dequantised float32 NumPy array), ``.version``, ``.alignment``.

    The file is memory-mapped; the header is parsed and every tensor's extent checked on opening; tensor bytes
    are read only when a tensor is asked for.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        source = f"GGUF file '{self.path}'"
        self._source = source
        try:
            with open(self.path, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                if size < 24:
                    raise GGUFError(f"{source}: {size} bytes, too short for the 24-byte GGUF preamble "
                                    f"(truncated or not GGUF)")
                self._map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
        except FileNotFoundError:
            raise FileNotFoundError(f"{source} does not exist") from None
        cursor = _Cursor(source, self._map, size)
        magic = bytes(cursor.take(4, "the magic"))
        if magic != MAGIC:
            raise GGUFError(f"{source}: bad magic {magic!r}, expected {MAGIC!r} (not a GGUF file)")
        self.version = cursor.integer("<u4", "the version")
        if self.version not in SUPPORTED_VERSIONS:
            hint = " (a big-endian file?)" if self.version > 0xFFFF else ""
            raise GGUFError(f"{source}: GGUF version {self.version}{hint} is not supported; tinydl reads versions "
                            f"{', '.join(map(str, SUPPORTED_VERSIONS))}")
        tensor_count = cursor.integer("<u8", "the tensor count")
        kv_count = cursor.integer("<u8", "the metadata count")
        self.metadata: dict[str, Any] = {}
        for index in range(kv_count):
            key = cursor.string(f"metadata key {index}")
            if key in self.metadata:
                raise GGUFError(f"{source}: metadata key {key!r} appears twice")
            value_type = cursor.integer("<u4", f"the type of metadata {key!r}")
            self.metadata[key] = cursor.value(value_type, f"metadata {key!r}")
        self.alignment = self.metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(self.alignment, int) or self.alignment <= 0 or self.alignment % 8:
            raise GGUFError(f"{source}: general.alignment must be a positive multiple of 8, found "
                            f"{self.alignment!r}")
        described = [self._read_tensor_info(cursor, index) for index in range(tensor_count)]
        data_start = -(-cursor.position // self.alignment) * self.alignment
        self.tensors: dict[str, TensorInfo] = {}
        for info in described:
            if info.name in self.tensors:
                raise GGUFError(f"{source}: tensor {info.name!r} appears twice")
            self.tensors[info.name] = dataclasses.replace(info, offset=data_start + info.offset)
        self._check_extents(size)

    def _read_tensor_info(self, cursor: _Cursor, index: int) -> TensorInfo:
        """One tensor's description; its offset still counts from the start of the data section."""
        name = cursor.string(f"the name of tensor {index}")
        where = f"{self._source}: tensor {name!r}"
        n_dims = cursor.integer("<u4", f"the rank of tensor {name!r}")
        if n_dims > MAX_DIMS:
            raise GGUFError(f"{where} has {n_dims} dims; ggml allows at most {MAX_DIMS}")
        dims = [cursor.integer("<u8", f"dim {axis} of tensor {name!r}") for axis in range(n_dims)]
        type_id = cursor.integer("<u4", f"the type of tensor {name!r}")
        offset = cursor.integer("<u8", f"the offset of tensor {name!r}")
        if offset % self.alignment:
            raise GGUFError(f"{where}: offset {offset} is not a multiple of the alignment {self.alignment}")
        ggml_type = GGML_TYPES.get(type_id)
        shape = tuple(reversed(dims))
        if ggml_type is None:
            return TensorInfo(name, shape, f"unknown type id {type_id}", offset, None)
        if dims and dims[0] % ggml_type.block_size:
            raise GGUFError(f"{where}: its rows of {dims[0]} values are not a whole number of {ggml_type.name} "
                            f"blocks of {ggml_type.block_size}")
        blocks = int(np.prod(dims, dtype=object)) // ggml_type.block_size
        return TensorInfo(name, shape, ggml_type.name, offset, blocks * ggml_type.block_bytes)

    def _check_extents(self, size: int) -> None:
        """Every tensor must lie inside the file and no two may overlap (gaps for alignment are fine)."""
        known = sorted((info for info in self.tensors.values() if info.nbytes is not None),
                       key=lambda info: (info.offset, info.nbytes))
        previous = None
        for info in known:
            end = info.offset + info.nbytes
            if end > size:
                raise GGUFError(f"{self._source}: tensor {info.name!r} ({info.type_name}, shape {info.shape}) "
                                f"needs bytes [{info.offset}, {end}) but the file has {size} bytes (truncated?)")
            if previous is not None and info.offset < previous.offset + previous.nbytes:
                raise GGUFError(f"{self._source}: tensor {info.name!r} at bytes [{info.offset}, {end}) overlaps "
                                f"tensor {previous.name!r} at [{previous.offset}, "
                                f"{previous.offset + previous.nbytes})")
            previous = info

    def keys(self) -> list[str]:
        """The tensor names, in file order."""
        return list(self.tensors)

    def tensor(self, name: str) -> np.ndarray:
        """The tensor ``name`` as a float32 array in NumPy order (dims reversed), dequantised if quantised."""
        if name not in self.tensors:
            raise KeyError(f"{self._source} has no tensor {name!r}; it has {len(self.tensors)}: "
                           f"{', '.join(list(self.tensors)[:10])}{', ...' if len(self.tensors) > 10 else ''}")
        info = self.tensors[name]
        if info.type_name not in _DEQUANTIZERS:
            raise GGUFError(f"{self._source}: tensor {name!r} has ggml type {info.type_name}, which tinydl cannot "
                            f"dequantise; supported: {', '.join(_DEQUANTIZERS)}")
        if self._map is None:
            raise ValueError(f"{self._source} is closed")
        raw = memoryview(self._map)[info.offset:info.offset + info.nbytes]
        return dequantize(raw, info.type_name, info.shape)

    def close(self) -> None:
        """Drop this object's reference to the mapping (the OS unmaps it once nothing else uses it)."""
        self._map = None

    def __enter__(self) -> "GGUFFile":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"GGUFFile('{self.path}', version={self.version}, {len(self.metadata)} metadata keys, "
                f"{len(self.tensors)} tensors)")
