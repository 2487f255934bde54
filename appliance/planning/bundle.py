"""Server side of source bundles: unpack an uploaded tar.gz safely and name it by content.

Hostile input is the normal case here, so:

* sizes are counted while decompressing, never taken from headers (gzip/tar bombs);
* only regular files and directories are accepted. Every symlink and hardlink is
  rejected, internal ones included: whether a chain of "internal" links escapes depends
  on the order the OS resolves them, and the client packer never sends links anyway;
* nothing appears at ``dest`` unless the whole bundle is valid (temp dir + rename).

``source_id`` hashes regular files (path + content) and empty directories (path), so tar
order, mtimes, owners, modes and the entries of directories that hold files do not change it,
and uploading the same files twice is idempotent.
"""
from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import io
import os
import posixpath
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from appliance.errors import InvalidArgument, PayloadTooLarge
from appliance.planning import hashing

_CHUNK = 64 * 1024
NAME_MAX_BYTES = 255  # one path component (NAME_MAX on Linux filesystems)
PATH_MAX_BYTES = 1024  # a whole entry path: far below PATH_MAX (4096) once under the data dir
_TAR_OVERHEAD_PER_ENTRY = 4 * 1024  # header, pax records, padding


def unpack_bundle(data: bytes, dest: Path, *, max_bytes: int, max_files: int) -> str:
    """Validate and unpack ``data`` into ``dest``; return its ``source_id``.

    If ``dest`` already exists (same bundle uploaded before) it is left untouched.
    ``max_files`` bounds every tar entry (directories too), ``max_bytes`` both the
    compressed upload and the unpacked file content.
    """
    dest = Path(dest)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"bundle is larger than {max_bytes} bytes", {"limit_bytes": max_bytes})
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        source_id = hashing.source_id(*_extract(data, staging, max_bytes=max_bytes, max_files=max_files))
        if not dest.exists():
            try:
                os.rename(staging, dest)
            except OSError:
                if not dest.exists():  # not a lost race with an identical upload
                    raise
        return source_id
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def bundle_source_id(data: bytes, *, max_bytes: int, max_files: int) -> str:
    """Validate ``data`` as :func:`unpack_bundle` does and return its ``source_id``, writing
    nothing: a bundle already unpacked here needs no write to be recognised."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"bundle is larger than {max_bytes} bytes", {"limit_bytes": max_bytes})
    return hashing.source_id(*_extract(data, None, max_bytes=max_bytes, max_files=max_files))


def store_bundle(data: bytes, sources_dir: Path, *, max_bytes: int, max_files: int) -> tuple[str, Path]:
    """Unpack into ``sources_dir/<source_id>``: the content-addressed home of a bundle."""
    sources_dir = Path(sources_dir)
    sources_dir.mkdir(parents=True, exist_ok=True)
    staging_dest = sources_dir / f".incoming-{os.getpid()}-{os.urandom(6).hex()}"
    source_id = unpack_bundle(data, staging_dest, max_bytes=max_bytes, max_files=max_files)
    final = sources_dir / source_id
    try:
        if final.exists():
            shutil.rmtree(staging_dest, ignore_errors=True)
        else:
            os.rename(staging_dest, final)
    except OSError:
        shutil.rmtree(staging_dest, ignore_errors=True)
        if not final.exists():
            raise
    return source_id, final


class _BoundedGunzip(io.RawIOBase):
    """Decompresses lazily and stops the moment output exceeds ``limit`` bytes."""

    def __init__(self, data: bytes, limit: int):
        self._gzip = gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")
        self._limit = limit
        self.produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._limit - self.produced + 1)
        chunk = self._gzip.read(want)
        self.produced += len(chunk)
        if self.produced > self._limit:
            raise PayloadTooLarge(f"bundle unpacks to more than {self._limit} bytes", {"limit_bytes": self._limit})
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _extract(data: bytes, staging: Path | None, *, max_bytes: int,
             max_files: int) -> tuple[dict[str, str], set[str]]:
    """Validate every entry and hash every file; write them under ``staging`` (None: nowhere).
    Returns the files (path -> SHA-256) and the empty directories."""
    stream = _BoundedGunzip(data, limit=max_bytes + _TAR_OVERHEAD_PER_ENTRY * (max_files + 2))
    files: dict[str, str] = {}
    directories: set[str] = set()
    parents: set[str] = set()
    total = 0
    try:
        with tarfile.open(fileobj=io.BufferedReader(stream, _CHUNK), mode="r|") as archive:
            for count, member in enumerate(archive, start=1):
                if count > max_files:
                    raise PayloadTooLarge(f"bundle has more than {max_files} entries", {"limit_files": max_files})
                path = _safe_member_path(member.name)
                if path is None:  # the archive root itself ("." or "./")
                    continue
                _claim(path, member.isdir(), files, directories, parents)
                if member.isdir():
                    if staging is not None:
                        (staging / path).mkdir(mode=0o755, parents=True, exist_ok=True)
                    continue
                if not member.isreg():
                    raise InvalidArgument(
                        f"bundle entry {member.name!r} is {_kind(member)}; only regular files and directories are allowed",
                        {"path": member.name},
                    )
                source = archive.extractfile(member)
                assert source is not None  # regular files always have a body
                sha = hashlib.sha256()
                with _writer(staging, path) as out:
                    while chunk := source.read(_CHUNK):
                        total += len(chunk)
                        if total > max_bytes:
                            raise PayloadTooLarge(f"bundle unpacks to more than {max_bytes} bytes", {"limit_bytes": max_bytes})
                        sha.update(chunk)
                        out.write(chunk)
                files[path] = sha.hexdigest()
    except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise InvalidArgument(f"bundle is not a valid gzip-compressed tar archive: {exc}") from None
    except OSError as exc:
        if exc.errno not in (errno.ENAMETOOLONG, errno.ELOOP, errno.EILSEQ):
            raise
        raise InvalidArgument(f"bundle entry cannot be stored here: {os.strerror(exc.errno)}") from None
    return files, directories - parents


@contextlib.contextmanager
def _writer(staging: Path | None, path: str) -> Iterator[BinaryIO | _Sink]:
    """A new file ``staging/path`` (0644) to write into, or a sink when only hashing."""
    if staging is None:
        yield _Sink()
        return
    target = staging / path
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    with open(target, "xb") as out:
        yield out
    os.chmod(target, 0o644)


class _Sink:
    def write(self, chunk: bytes) -> int:
        return len(chunk)


def _safe_member_path(name: str) -> str | None:
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        raise InvalidArgument(f"bundle entry {name!r} has an unsafe path", {"path": name})
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # tarfile keeps undecodable bytes as surrogates
        raise InvalidArgument("bundle entry names must be UTF-8",
                              {"path": name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")}) from None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InvalidArgument(f"bundle entry {name!r} leaves the bundle", {"path": name})
    if any(len(p.encode()) > NAME_MAX_BYTES for p in parts):
        raise InvalidArgument(f"bundle entry {_shortened(name)!r} has a name longer than {NAME_MAX_BYTES} bytes",
                              {"path": _shortened(name), "limit_bytes": NAME_MAX_BYTES})
    path = posixpath.join(*parts) if parts else None
    if path is not None and len(path.encode()) > PATH_MAX_BYTES:
        raise InvalidArgument(f"bundle entry {_shortened(name)!r} has a path longer than {PATH_MAX_BYTES} bytes",
                              {"path": _shortened(name), "limit_bytes": PATH_MAX_BYTES})
    return path


def _shortened(name: str, keep: int = 120) -> str:
    return name if len(name) <= keep else f"{name[:keep]}…"


def _claim(path: str, is_dir: bool, files: dict[str, str], directories: set[str], parents: set[str]) -> None:
    """One entry per path, and no path both a file and a directory (explicit or implied)."""
    if path in files or path in directories:
        raise InvalidArgument(f"bundle entry {path!r} appears twice", {"path": path})
    if not is_dir and path in parents:
        raise InvalidArgument(f"bundle entry {path!r} is both a file and a directory", {"path": path})
    parent = posixpath.dirname(path)
    while parent:
        if parent in files:
            raise InvalidArgument(f"bundle entry {path!r} is inside a file", {"path": path})
        parents.add(parent)
        parent = posixpath.dirname(parent)
    if is_dir:
        directories.add(path)


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "a symlink"
    if member.islnk():
        return "a hardlink"
    if member.ischr() or member.isblk():
        return "a device file"
    if member.isfifo():
        return "a fifo"
    return "an unsupported entry type"
