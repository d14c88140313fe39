"""File plumbing shared by the dataset readers: finding files, reading them whole, downloading with a checksum,
and unpacking archives without letting a member escape its directory."""
from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path


def read_bytes(path: Path, owner: str) -> bytes:
    """The whole (decompressed, when the name ends in ``.gz``) content of ``path``."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                return stream.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(f"{owner}: {path} is truncated or corrupt ({path.stat().st_size} bytes on disk): "
                         f"{error}") from error


def missing_dataset(owner: str, root: Path, looked_for: list[Path], how_to_get: str,
                    download_error: Exception | None = None) -> FileNotFoundError:
    """The error for a dataset that is not on disk: where we looked, and how to get the files."""
    places = ", ".join(str(p) for p in looked_for)
    reason = f" (download failed: {download_error})" if download_error is not None else ""
    return FileNotFoundError(f"{owner}: no dataset found in directory {root} (looked for {places}){reason}. "
                             f"{how_to_get}")


def download(url: str, md5: str, destination: Path) -> Path:
    """Fetch ``url`` to ``destination``, checking its MD5 digest; nothing is left behind when either fails.

    Raises OSError (``urllib.error.URLError`` is one) when the fetch fails, ValueError when the digest differs.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise ValueError(f"download of {url}: checksum mismatch, expected MD5 {md5}, got {digest.hexdigest()}")
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
    return destination


def extract_tar(archive: Path, destination: Path) -> None:
    """Unpack the regular files and directories of a tar archive under ``destination``.

    Links, devices and members whose path would leave ``destination`` (absolute, or with ``..``) are refused.
    """
    root = destination.resolve()
    with tarfile.open(archive) as tar:
        for member in tar:
            target = (root / member.name).resolve()
            if not (member.isfile() or member.isdir()) or not target.is_relative_to(root):
                raise ValueError(f"extract {archive}: refusing member {member.name!r} "
                                 f"(only regular files and directories under {root} are allowed)")
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as source, open(target, "wb") as out:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
