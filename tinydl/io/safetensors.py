"""safetensors: read and write Hugging Face's weight format with NumPy only.

Layout of a file (all integers little-endian)::

    bytes 0..8           N, an unsigned 64-bit integer: the length of the header
    bytes 8..8+N         the header, UTF-8 JSON starting with "{" (trailing spaces allowed as padding):
                         {"__metadata__": {"key": "value", ...},                 (optional, strings only)
                          "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
    bytes 8+N..end       the data buffer; a tensor's bytes are buffer[begin:end], C order, little-endian

``data_offsets`` are relative to the start of the buffer. The format requires that ``end - begin`` equals the
element count times the dtype's size, that the tensors tile the buffer exactly (no overlaps and no holes) and that
the buffer ends where the last tensor ends. :func:`load_file` checks all of this against the file's size before it
touches any tensor bytes, and raises :class:`SafetensorsError` naming the file, the tensor, and what was expected
and found.

Reading is memory-mapped (copy-on-write): the arrays returned view the file's pages, which the OS loads on first
use; writing into them changes the array, never the file. BF16, which NumPy cannot hold, is widened to float32.
:func:`save_file` writes atomically (a temporary file in the target's directory, fsynced, then renamed).
"""
from __future__ import annotations

import json
import mmap
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import to_device
from ..serialization import atomic_write
from ..tensor import Tensor

__all__ = ["SafetensorsError", "SafetensorsFile", "load_file", "save_file", "load_model", "save_model",
           "MAX_HEADER_BYTES"]

MAX_HEADER_BYTES = 100_000_000  # the reference implementation's limit
_LENGTH_BYTES = 8
_METADATA_KEY = "__metadata__"

#: safetensors dtype name -> the NumPy dtype that holds it as stored (little-endian)
_STORED_DTYPES: dict[str, np.dtype] = {name: np.dtype(code) for name, code in {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}.items()}
#: dtypes the format defines that neither NumPy nor tinydl can hold: named in the error
_UNSUPPORTED_DTYPES = ("F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64")
#: NumPy dtype -> safetensors name, for writing (BF16 has no NumPy dtype, so it is never written)
_NAMES_FOR_WRITING: dict[np.dtype, str] = {dtype: name for name, dtype in _STORED_DTYPES.items() if name != "BF16"}


class SafetensorsError(ValueError):
    """A file that is not valid safetensors (bad header, offsets, dtype, size), or tensors that cannot be saved."""


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """Widen bfloat16 values, given as their uint16 bit patterns, to float32.

    bfloat16 is the upper half of a float32 (sign, 8 exponent bits, 7 mantissa bits), so the float32 with the
    same value has bit pattern ``bits << 16``: exact, NaN and infinities included.
    """
    return (bits.astype(np.uint32) << 16).view(np.float32)


# --------------------------------------------------------------------------------------------- the header
def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise SafetensorsError(f"the key {key!r} appears twice")
        seen[key] = value
    return seen


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class _Entry:
    """One tensor's header entry, checked: name, dtype name, shape, and its [begin, end) in the data buffer."""

    def __init__(self, source: str, name: str, info: Any):
        where = f"{source}: tensor {name!r}"
        if not isinstance(info, dict):
            raise SafetensorsError(f"{where}: the header entry must be a JSON object, found {info!r}")
        missing = {"dtype", "shape", "data_offsets"} - info.keys()
        if missing:
            raise SafetensorsError(f"{where}: the header entry lacks {sorted(missing)}; found keys {sorted(info)}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype in _UNSUPPORTED_DTYPES:
            raise SafetensorsError(f"{where}: dtype {dtype} is not supported by tinydl (NumPy cannot hold it); "
                                   f"supported: {', '.join(_STORED_DTYPES)}")
        if dtype not in _STORED_DTYPES:
            raise SafetensorsError(f"{where}: unknown dtype {dtype!r}; supported: {', '.join(_STORED_DTYPES)}")
        if not isinstance(shape, list) or not all(_is_count(size) for size in shape):
            raise SafetensorsError(f"{where}: shape must be a list of non-negative integers, found {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets)
                or offsets[0] > offsets[1]):
            raise SafetensorsError(f"{where}: data_offsets must be [begin, end] with 0 <= begin <= end, "
                                   f"found {offsets!r}")
        self.name, self.dtype, self.shape = name, dtype, tuple(shape)
        self.begin, self.end = offsets
        expected = int(np.prod(shape, dtype=object)) * _STORED_DTYPES[dtype].itemsize
        if self.end - self.begin != expected:
            raise SafetensorsError(f"{where}: dtype {dtype} and shape {list(shape)} need {expected} bytes, but "
                                   f"data_offsets {offsets} span {self.end - self.begin}")


def _parse_header(source: str, raw: bytes) -> tuple[dict[str, str], list[_Entry]]:
    """The metadata and the entries, ordered by offset, of a header; checks the JSON and each entry."""
    if not raw.startswith(b"{"):
        raise SafetensorsError(f"{source}: the header must be a JSON object starting with '{{', found "
                               f"{raw[:16]!r}")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except SafetensorsError as error:
        raise SafetensorsError(f"{source}: invalid header: {error}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise SafetensorsError(f"{source}: the header is not valid UTF-8 JSON ({error})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{source}: the header must be a JSON object, found {type(header).__name__}")
    metadata = header.pop(_METADATA_KEY, None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise SafetensorsError(f"{source}: __metadata__ must map strings to strings, found {metadata!r}")
    entries = sorted((_Entry(source, name, info) for name, info in header.items()),
                     key=lambda entry: (entry.begin, entry.end))
    return metadata, entries


def _check_tiling(source: str, entries: list[_Entry], buffer_bytes: int) -> None:
    """The entries, sorted by offset, must cover [0, buffer_bytes) exactly: no overlap, no hole, nothing past
    the end of the file, nothing after the last tensor."""
    position, previous = 0, None
    for entry in entries:
        if entry.end > buffer_bytes:
            raise SafetensorsError(f"{source}: tensor {entry.name!r} ({entry.dtype}, shape {list(entry.shape)}) "
                                   f"needs data bytes [{entry.begin}, {entry.end}), but the file holds only "
                                   f"{buffer_bytes} bytes of data (truncated?)")
        if entry.begin < position:
            raise SafetensorsError(f"{source}: tensor {entry.name!r} at data bytes [{entry.begin}, {entry.end}) "
                                   f"overlaps tensor {previous.name!r} at [{previous.begin}, {previous.end})")
        if entry.begin > position:
            after = f"after tensor {previous.name!r}" if previous else "at the start of the data"
            raise SafetensorsError(f"{source}: a hole of {entry.begin - position} bytes {after}: tensor "
                                   f"{entry.name!r} begins at {entry.begin}, expected {position}")
        position, previous = entry.end, entry
    if position != buffer_bytes:
        raise SafetensorsError(f"{source}: the tensors end at data byte {position}, but the file holds "
                               f"{buffer_bytes} bytes of data: {buffer_bytes - position} bytes belong to no tensor")


class SafetensorsFile:
    """An open, validated safetensors file: ``.metadata``, ``.keys()``, ``.tensor(name)``, ``.dtype(name)``,
    ``.shape(name)``. The file is memory-mapped; tensors are views of its pages (BF16 is widened to a float32
    copy). Use as a context manager or call :meth:`close`; arrays already returned stay valid after closing."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        source = f"safetensors file '{self.path}'"
        try:
            with open(self.path, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                if size < _LENGTH_BYTES:
                    raise SafetensorsError(f"{source}: {size} bytes, too short for the {_LENGTH_BYTES}-byte "
                                           f"header length (truncated or not safetensors)")
                self._map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
        except FileNotFoundError:
            raise FileNotFoundError(f"{source} does not exist") from None
        header_bytes = int.from_bytes(self._map[:_LENGTH_BYTES], "little")
        if header_bytes > MAX_HEADER_BYTES:
            raise SafetensorsError(f"{source}: the header claims {header_bytes} bytes, more than the limit of "
                                   f"{MAX_HEADER_BYTES} (corrupted, or not safetensors)")
        if _LENGTH_BYTES + header_bytes > size:
            raise SafetensorsError(f"{source}: the header claims {header_bytes} bytes, but the file has only "
                                   f"{size - _LENGTH_BYTES} after the length field (truncated?)")
        self._data_start = _LENGTH_BYTES + header_bytes
        self.metadata, entries = _parse_header(source, self._map[_LENGTH_BYTES:self._data_start])
        _check_tiling(source, entries, size - self._data_start)
        self._entries = {entry.name: entry for entry in entries}

    def keys(self) -> list[str]:
        """The tensor names, in the order of their bytes in the file."""
        return list(self._entries)

    def dtype(self, name: str) -> str:
        """The stored safetensors dtype name ("F32", "BF16", ...)."""
        return self._entry(name).dtype

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entry(name).shape

    def tensor(self, name: str) -> np.ndarray:
        """The tensor as a NumPy array (a copy-on-write view of the file; BF16 widened to float32)."""
        entry = self._entry(name)
        if self._map is None:
            raise ValueError(f"safetensors file '{self.path}' is closed")
        stored = _STORED_DTYPES[entry.dtype]
        array = np.ndarray(entry.shape, dtype=stored, buffer=self._map, offset=self._data_start + entry.begin)
        return bfloat16_to_float32(array) if entry.dtype == "BF16" else array

    def _entry(self, name: str) -> _Entry:
        if name not in self._entries:
            raise KeyError(f"safetensors file '{self.path}' has no tensor {name!r}; it has {len(self._entries)}: "
                           f"{', '.join(list(self._entries)[:10])}{', ...' if len(self._entries) > 10 else ''}")
        return self._entries[name]

    def close(self) -> None:
        """Drop this object's reference to the mapping; the pages stay mapped while returned arrays use them."""
        self._map = None  # an mmap with exported buffers cannot be closed explicitly; the GC unmaps it

    def __enter__(self) -> "SafetensorsFile":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def load_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of a safetensors file, by name, in file order (see :class:`SafetensorsFile`)."""
    with SafetensorsFile(path) as file:
        return {name: file.tensor(name) for name in file.keys()}


# ---------------------------------------------------------------------------------------------- writing
def _as_numpy(name: Any, value: Any) -> np.ndarray:
    if not isinstance(name, str) or name == _METADATA_KEY:
        raise SafetensorsError(f"save_file: tensor names must be strings other than {_METADATA_KEY!r}, "
                               f"found {name!r}")
    array = np.asarray(to_device(value.data if isinstance(value, Tensor) else value, "cpu"))
    if array.dtype.newbyteorder("<") not in _NAMES_FOR_WRITING:
        raise SafetensorsError(f"save_file: tensor {name!r} has dtype {array.dtype}, which safetensors cannot "
                               f"hold; supported: {', '.join(str(d) for d in _NAMES_FOR_WRITING)}")
    return np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")  # keeps 0-d arrays 0-d


def _header_bytes(arrays: dict[str, np.ndarray], metadata: Mapping[str, str] | None) -> bytes:
    """The JSON header, padded with spaces to a multiple of 8 bytes so the data buffer starts aligned."""
    header: dict[str, Any] = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise SafetensorsError(f"save_file: metadata must map strings to strings, found {dict(metadata)!r}")
        header[_METADATA_KEY] = dict(metadata)
    offset = 0
    for name, array in arrays.items():
        header[name] = {"dtype": _NAMES_FOR_WRITING[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return raw + b" " * (-len(raw) % 8)


def save_file(tensors: Mapping[str, Any], path: str | os.PathLike,
              metadata: Mapping[str, str] | None = None) -> None:
    """Write ``tensors`` (name -> NumPy/CuPy array or tinydl Tensor) to ``path`` as safetensors, atomically.

    As the reference implementation does, tensors are laid out by decreasing element size, then by name, so
    every tensor's bytes start at a multiple of its element size.
    """
    arrays = {name: _as_numpy(name, value) for name, value in tensors.items()}
    arrays = dict(sorted(arrays.items(), key=lambda item: (-item[1].dtype.itemsize, item[0])))
    header = _header_bytes(arrays, metadata)
    with atomic_write(path) as file:
        file.write(len(header).to_bytes(_LENGTH_BYTES, "little"))
        file.write(header)
        for array in arrays.values():
            file.write(memoryview(array.reshape(-1)).cast("B"))


# ------------------------------------------------------------------------------------------ modules
def save_model(model: Any, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """Save ``model.state_dict()`` (parameters and persistent buffers, by dotted name) as safetensors."""
    save_file(model.state_dict(), path, metadata)


def load_model(model: Any, path: str | os.PathLike, strict: bool = True) -> Any:
    """Load a safetensors file into ``model`` with ``model.load_state_dict(..., strict)``; returns its
    (missing, unexpected) keys. Missing, unexpected (under ``strict``) and mis-shaped tensors are all named in
    one error, together with the file."""
    tensors = load_file(path)
    try:
        return model.load_state_dict(tensors, strict=strict)
    except ValueError as error:
        raise SafetensorsError(f"load_model: the tensors of '{path}' do not fit {type(model).__name__}: "
                               f"{error}") from None
