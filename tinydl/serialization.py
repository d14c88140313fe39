"""Checkpoints: ``save(obj, path)`` and ``load(path)`` for nested state (dicts, lists, tuples, Tensors, arrays,
numbers, strings, None), without pickle.

Format: one zip archive (readable by ``numpy.load`` as an ``.npz``). The member ``manifest.json`` describes the
structure as a tree of typed nodes, plus a format tag and version; each array or Tensor is a member ``.npy`` file
whose name is its path in the structure (``arrays/model/conv1.weight.npy``). Loading reads the manifest as JSON
and the arrays without pickle, so a checkpoint can hold data and nothing that executes.

Loading trusts nothing in the file (a checkpoint may come from anyone), and allocates no more than the file's
size plus a small constant:

* every zip member must be stored uncompressed (as :func:`save` writes them) with equal declared and stored
  sizes, and the members together must fit in the file, so no member can expand (no zip bomb);
* each array's ``.npy`` header (shape, dtype) is read first, and the bytes it claims must be exactly the bytes the
  member holds; only then is the array's memory allocated (a 300-byte file cannot claim a 37 GiB array);
* member names are unique, no array is referenced twice, and the manifest is nested at most ``MAX_DEPTH`` deep
  and at most ``MAX_MANIFEST_BYTES`` long (parsed JSON takes more memory than its text: that bounds it).

Anything else is a :class:`CheckpointError` (or ``FileNotFoundError``), which a fuzz test checks.

Saving is atomic: everything is written to a temporary file in the target's directory, flushed and fsynced, then
renamed over the target with ``os.replace``. A crash at any point leaves either the old checkpoint or the new one.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import secrets
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from .backend import Device, is_array, to_device
from .tensor import Tensor

__all__ = ["save", "load", "CheckpointError", "FORMAT", "VERSION"]

FORMAT = "tinydl-checkpoint"
VERSION = 1
MANIFEST = "manifest.json"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_PICKLE_PROTOCOL_MARK = 0x80  # first byte of a pickle of protocol 2 or later (torch.save's legacy format too)
MAX_DEPTH = 64  # containers nested deeper than this in a manifest are refused
MAX_MANIFEST_BYTES = 16 << 20  # ~150,000 arrays; its parsed JSON takes at most ~25 times this (``[{},{},...]``)
_NPY_HEADER_LIMIT = 10_000  # bytes of an .npy header (NumPy's own default limit)
# what the zip and .npy layers raise on malformed input: each becomes a CheckpointError
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, struct.error,
                   NotImplementedError, RuntimeError, OverflowError, zlib.error, SyntaxError, tokenize.TokenError)


class CheckpointError(ValueError):
    """A file that is not a readable tinydl checkpoint: truncated, corrupted, foreign, or holding pickles."""


# ------------------------------------------------------------------------------------------------ encoding
def _member_name(location: tuple[str | int, ...]) -> str:
    """``("model", "conv1.weight") -> "arrays/model/conv1.weight.npy"``; "%" and "/" in keys are escaped, so
    distinct locations get distinct names."""
    escaped = (str(part).replace("%", "%25").replace("/", "%2F") for part in location)
    return "".join(["arrays", *("/" + part for part in escaped), ".npy"])


def _describe(location: tuple[str | int, ...]) -> str:
    return "obj" + "".join(f"[{part!r}]" for part in location)


def _store_array(array: Any, location: tuple[str | int, ...], arrays: dict[str, np.ndarray]) -> str:
    array = to_device(array, "cpu")
    if array.dtype.hasobject:
        raise TypeError(f"save: {_describe(location)} is an object array (dtype {array.dtype}); checkpoints hold "
                        f"numeric arrays only")
    name = _member_name(location)
    arrays[name] = array
    return name


def _encode(value: Any, location: tuple[str | int, ...], arrays: dict[str, np.ndarray],
            open_containers: set[int]) -> dict[str, Any]:
    """The manifest node for ``value``; its arrays are added to ``arrays`` (member name -> array)."""
    if value is None:
        return {"type": "none"}
    if isinstance(value, np.generic):  # before the Python types: np.float64 is a float subclass
        return {"type": "numpy_scalar", "array": _store_array(np.asarray(value), location, arrays)}
    if isinstance(value, bool):
        return {"type": "bool", "value": value}
    if isinstance(value, int):
        return {"type": "int", "value": value}
    if isinstance(value, float):
        return {"type": "float", "value": repr(value)}  # repr round-trips exactly, nan and inf included
    if isinstance(value, str):
        return {"type": "str", "value": value}
    if isinstance(value, Tensor):
        return {"type": "tensor", "array": _store_array(value.data, location, arrays),
                "requires_grad": bool(value.requires_grad)}
    if isinstance(value, np.ndarray) or (is_array(value) and not isinstance(value, np.generic)):
        return {"type": "ndarray", "array": _store_array(value, location, arrays)}
    if isinstance(value, (dict, list, tuple)):
        if id(value) in open_containers:
            raise ValueError(f"save: {_describe(location)} contains itself (a reference cycle)")
        open_containers.add(id(value))
        try:
            if isinstance(value, dict):
                for key in value:
                    if not isinstance(key, (str, int)) or isinstance(key, bool):
                        raise TypeError(f"save: {_describe(location)} has key {key!r} of type "
                                        f"{type(key).__name__}; dict keys must be str or int")
                items = [[key, _encode(item, (*location, key), arrays, open_containers)]
                         for key, item in value.items()]
                return {"type": "dict", "items": items}
            items = [_encode(item, (*location, position), arrays, open_containers)
                     for position, item in enumerate(value)]
            return {"type": "tuple" if isinstance(value, tuple) else "list", "items": items}
        finally:
            open_containers.discard(id(value))
    raise TypeError(f"save: {_describe(location)} has unsupported type {type(value).__name__}; a checkpoint holds "
                    f"dicts, lists, tuples, Tensors, arrays, int, float, bool, str and None")


# ------------------------------------------------------------------------------------------------ writing
def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where directories cannot be opened)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """``with atomic_write(path) as file:`` write the new content into ``file``; on leaving the block it replaces
    ``path`` in one rename, after an fsync, so ``path`` holds either its old content or the whole new one, even if
    the process is killed midway. On an error the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` (nested dicts with str or int keys, lists, tuples, Tensors, NumPy/CuPy arrays, NumPy scalars,
    int, float, bool, str, None) to ``path``, atomically: ``path`` holds either its old content or the new."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    manifest = {"format": FORMAT, "version": VERSION, "root": _encode(obj, (), arrays, set())}
    manifest_text = json.dumps(manifest, allow_nan=False, ensure_ascii=False)
    with atomic_write(path) as file:
        with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            archive.writestr(MANIFEST, manifest_text)
            for name, array in arrays.items():
                with archive.open(name, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)


# ------------------------------------------------------------------------------------------------ reading
def _open_archive(path: Path) -> zipfile.ZipFile:
    """Open ``path`` as a zip archive, or say what kind of file it is instead."""
    with open(path, "rb") as file:
        head = file.read(4)
    size = path.stat().st_size
    if not head:
        raise CheckpointError(f"load: {path} is empty (0 bytes), not a tinydl checkpoint")
    if head[0] == _PICKLE_PROTOCOL_MARK:
        raise CheckpointError(f"load: {path} is a pickle file (protocol {head[1]}), not a tinydl checkpoint; "
                              f"tinydl never unpickles, since unpickling can run arbitrary code")
    if head not in _ZIP_MAGIC:
        raise CheckpointError(f"load: {path} is not a tinydl checkpoint (it does not start like a zip archive: "
                              f"first bytes {head.hex()})")
    try:
        archive = zipfile.ZipFile(path)
    except _ARCHIVE_ERRORS as error:
        raise CheckpointError(f"load: {path} is truncated or corrupted ({size} bytes; the zip archive cannot be "
                              f"read: {error})") from error
    try:
        _check_members(archive, path, size)
    except BaseException:
        archive.close()
        raise
    return archive


def _check_members(archive: zipfile.ZipFile, path: Path, size: int) -> None:
    """Refuse members that could expand beyond the file (compressed, or sizes that disagree) and duplicate names."""
    names: set[str] = set()
    stored = 0
    for info in archive.infolist():
        if info.filename in names:
            raise CheckpointError(f"load: {path} is corrupted: the archive holds two members named "
                                  f"{info.filename!r}")
        names.add(info.filename)
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            raise CheckpointError(f"load: {path}: member {info.filename!r} is compressed or encrypted (zip method "
                                  f"{info.compress_type}); tinydl checkpoints store members as they are, and "
                                  f"refuse others, which could expand to any size when read")
        if info.file_size != info.compress_size:
            raise CheckpointError(f"load: {path} is corrupted: member {info.filename!r} declares "
                                  f"{info.file_size} bytes but stores {info.compress_size}")
        stored += info.compress_size
    if stored > size:
        raise CheckpointError(f"load: {path} is corrupted: its members claim {stored} bytes, more than the "
                              f"file's {size}")


def _read_manifest(archive: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    names = archive.namelist()
    if MANIFEST not in names:
        hint = " (it holds pickled data: a PyTorch checkpoint?)" if any(n.endswith(".pkl") for n in names) else ""
        raise CheckpointError(f"load: {path} is a zip archive but not a tinydl checkpoint: no {MANIFEST}{hint}")
    if archive.getinfo(MANIFEST).file_size > MAX_MANIFEST_BYTES:
        raise CheckpointError(f"load: {path}: {MANIFEST} holds {archive.getinfo(MANIFEST).file_size} bytes, more "
                              f"than the {MAX_MANIFEST_BYTES} a tinydl checkpoint's manifest may have; refused")
    try:
        manifest = json.loads(archive.read(MANIFEST).decode("utf-8"))
    except (*_ARCHIVE_ERRORS, RecursionError) as error:
        raise CheckpointError(f"load: {path} is corrupted: unreadable {MANIFEST} ({error})") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise CheckpointError(f"load: {path} is not a tinydl checkpoint: format tag {found!r}, expected {FORMAT!r}")
    if manifest.get("version") != VERSION:
        raise CheckpointError(f"load: {path} has format version {manifest.get('version')!r}; this tinydl reads "
                              f"version {VERSION}")
    if "root" not in manifest:
        raise CheckpointError(f"load: {path} is corrupted: {MANIFEST} has no 'root' entry")
    return manifest


def _read_array(archive: zipfile.ZipFile, name: Any, path: Path, claimed: set[str]) -> np.ndarray:
    """The array stored in member ``name``, after checking that its header describes exactly the member's bytes."""
    if not isinstance(name, str):
        raise CheckpointError(f"load: {path} is corrupted: an array entry names {str(name)[:80]!r}, not a member")
    if name in claimed:
        raise CheckpointError(f"load: {path} is corrupted: the manifest references array {name!r} twice")
    claimed.add(name)
    try:
        info = archive.getinfo(name)
    except KeyError as error:
        raise CheckpointError(f"load: {path} is corrupted: the manifest names array {name!r}, which is not in "
                              f"the archive") from error
    try:
        with archive.open(info) as member:
            shape, fortran_order, dtype = _read_npy_header(member, name, path)
            count = math.prod(shape)
            expected = count * dtype.itemsize
            held = info.file_size - member.tell()
            if expected != held:
                raise CheckpointError(
                    f"load: {path} is corrupted: array {name!r} claims shape {shape} and dtype {dtype} "
                    f"({expected} bytes), but its member holds {held} bytes")
            buffer = bytearray(expected)
            if member.readinto(buffer) != expected or member.read(1):
                raise CheckpointError(f"load: {path} is corrupted: array {name!r} is truncated")
    except CheckpointError:
        raise
    except _ARCHIVE_ERRORS as error:
        raise CheckpointError(f"load: {path} is corrupted: array {name!r} cannot be read ({error})") from error
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


def _read_npy_header(member: io.BufferedIOBase, name: str, path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of an ``.npy`` member, refusing object dtypes and impossible shapes."""
    version = np.lib.format.read_magic(member)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(
        version)
    if read_header is None:
        raise CheckpointError(f"load: {path}: array {name!r} has .npy format version {version}, which tinydl "
                              f"does not read")
    try:
        shape, fortran_order, dtype = read_header(member, max_header_size=_NPY_HEADER_LIMIT)
    except (RecursionError, MemoryError, TypeError) as error:
        raise CheckpointError(f"load: {path} is corrupted: array {name!r} has an unreadable header "
                              f"({type(error).__name__})") from error
    if dtype.hasobject:
        raise CheckpointError(f"load: {path}: array {name!r} holds pickled objects; refused (nothing in it was "
                              f"executed: tinydl never unpickles)")
    if dtype.itemsize == 0 or any(type(n) is not int or n < 0 for n in shape):
        raise CheckpointError(f"load: {path} is corrupted: array {name!r} claims an impossible shape {shape} "
                              f"or dtype {dtype}")
    return tuple(shape), bool(fortran_order), dtype


class _Reader:
    """What decoding one checkpoint needs: the archive, where it came from, the target device, and the array
    members already read (each may be read once)."""

    def __init__(self, archive: zipfile.ZipFile, path: Path, device: Device | str | None):
        self.archive, self.path, self.device = archive, path, device
        self.claimed: set[str] = set()

    def array(self, name: Any) -> np.ndarray:
        return _read_array(self.archive, name, self.path, self.claimed)

    def decode(self, node: Any, depth: int = 0) -> Any:
        kind = node.get("type") if isinstance(node, dict) else None
        if depth > MAX_DEPTH:
            raise CheckpointError(f"load: {self.path}: {MANIFEST} nests containers more than {MAX_DEPTH} deep; "
                                  f"refused")
        try:
            if kind == "none":
                return None
            if kind in ("bool", "int", "str"):
                value = node["value"]
                if type(value) is not {"bool": bool, "int": int, "str": str}[kind]:
                    raise TypeError(f"{kind} node holds {type(value).__name__}")
                return value
            if kind == "float":
                return float(node["value"])
            if kind == "dict":
                return {key: self.decode(item, depth + 1) for key, item in node["items"]}
            if kind in ("list", "tuple"):
                items = [self.decode(item, depth + 1) for item in node["items"]]
                return items if kind == "list" else tuple(items)
            if kind == "ndarray":
                return self.array(node["array"])
            if kind == "numpy_scalar":
                return self.array(node["array"])[()]
            if kind == "tensor":
                array = self.array(node["array"])
                return Tensor(array if self.device is None else to_device(array, self.device),
                              requires_grad=bool(node["requires_grad"]))
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"load: {self.path} is corrupted: malformed {kind} entry in {MANIFEST} "
                                  f"({type(error).__name__}: {error})") from error
        raise CheckpointError(f"load: {self.path} is corrupted: unknown entry {str(node)[:80]!r} in {MANIFEST}")


def load(path: str | os.PathLike, device: Device | str | None = None) -> Any:
    """Read a checkpoint written by :func:`save`. Tensors come back as Tensors (moved to ``device`` when given),
    arrays as NumPy arrays, and containers, numbers and strings as they were.

    Raises FileNotFoundError when ``path`` does not exist and :class:`CheckpointError` when it is not a readable
    tinydl checkpoint.
    """
    path = Path(path)
    with _open_archive(path) as archive:
        manifest = _read_manifest(archive, path)
        return _Reader(archive, path, device).decode(manifest["root"])
