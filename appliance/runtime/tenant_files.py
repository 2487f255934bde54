"""Root touching files in an org's directories: a volume, a pgdata, a socket directory.

Those directories belong to the org's OS user, and the org's code (``COPY … TO PROGRAM``) can
put anything there: a symlink to the operator token, a FIFO that never answers, ``/dev/zero``.
So whenever the appliance, as root, reads or writes one of their files it opens it without
following a final symlink and without blocking, accepts a regular file only, and reads at most
what it asked for; a file it appends to is made the org's through the open handle, never
through a path that may have been swapped meanwhile.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_REPLACE = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # truncated once checked


class NotARegularFile(OSError):
    """What a tenant left in place of a file we expected (a link, a FIFO, a device)."""


def _open_regular(path: Path, flags: int, mode: int = 0o600) -> int:
    fd = os.open(path, flags, mode)  # ELOOP on a final symlink: an OSError like any other
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise NotARegularFile(f"{path} is not a regular file")
    return fd


def read_head(path: Path, limit: int = 4096) -> bytes:
    """At most ``limit`` bytes from the start of a regular file."""
    fd = _open_regular(path, _READ)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def read_tail(path: Path, limit: int) -> bytes:
    """The last ``limit`` bytes (or fewer) of a regular file."""
    fd = _open_regular(path, _READ)
    try:
        size = os.fstat(fd).st_size
        os.lseek(fd, max(0, size - limit), os.SEEK_SET)
        chunks, left = [], min(limit, size)
        while left > 0 and (chunk := os.read(fd, left)):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def append(path: Path, data: bytes, owner: tuple[int, int] | None) -> None:
    """Append ``data`` to a regular file (made if missing), owned by ``owner`` afterwards."""
    fd = _open_regular(path, _APPEND)
    try:
        os.write(fd, data)
        if owner is not None:
            os.fchown(fd, *owner)
    finally:
        os.close(fd)


def replace(path: Path, data: bytes, owner: tuple[int, int] | None, mode: int) -> None:
    """``path`` holds exactly ``data`` (made if missing), with ``mode`` and ``owner`` set through
    the open handle."""
    fd = _open_regular(path, _REPLACE, mode)
    try:
        os.ftruncate(fd, 0)  # only now: a hard link to someone else's file was refused before anything changed
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, *owner)
        os.write(fd, data)
    finally:
        os.close(fd)
