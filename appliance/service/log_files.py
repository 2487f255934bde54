"""The worker log files of `sqlrs-appliance up`, rotated by size.

A worker writes its log to stderr, as under systemd (where journald keeps and rotates it). Under
`up` that stderr is a pipe: a thread of `up` reads it and appends to ``logs/worker-N.log``,
which is renamed to ``worker-N.log.1`` (and older ones shifted, the oldest dropped) once it
would exceed ``log_file_max_bytes``. Rotation happens between two reads, so no line is lost or
split across files by it, and the worker never has to reopen anything.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

_READ_BYTES = 64 * 1024
_LONGEST_LINE = 1024 * 1024  # a longer "line" is written in pieces, and may be split by a rotation


class RotatingLog:
    """Appends to ``path``; keeps at most ``backups`` older files ``path.1`` (newest) … ``path.N``."""

    def __init__(self, path: Path, max_bytes: int, backups: int):
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self._lock = threading.Lock()
        self._fd: int | None = None

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            size = os.fstat(self._fd).st_size
            if size and size + len(data) > self.max_bytes:
                self._rotate()
            os.write(self._fd, data)

    def _rotate(self) -> None:
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None  # never written to again: the number may be another file's by now
        for older in range(self.backups - 1, 0, -1):
            source = self.path.with_name(f"{self.path.name}.{older}")
            if source.exists():
                source.replace(self.path.with_name(f"{self.path.name}.{older + 1}"))
        if self.backups:
            with contextlib.suppress(FileNotFoundError):  # an operator removed it meanwhile
                self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def pump(read_fd: int, log: RotatingLog, name: str) -> threading.Thread:
    """Copy everything written to the pipe into ``log`` until every writer has closed it."""
    def run() -> None:
        complained = False
        try:
            while data := _read_lines(read_fd):
                try:
                    log.write(data)
                except OSError as exc:  # a full disk: lose these lines, never block or kill the worker
                    if not complained:
                        print(f"cannot write {log.path} ({exc.strerror}); dropping {name}'s log lines until "
                              "it can", file=sys.stderr, flush=True)
                    complained = True
                else:
                    complained = False
        finally:
            os.close(read_fd)
    thread = threading.Thread(target=run, name=f"log-{name}", daemon=True)
    thread.start()
    return thread


def _read_lines(fd: int) -> bytes:
    """What the pipe holds now, extended to the end of its last line, so a rotation never splits a
    line between two files."""
    data = os.read(fd, _READ_BYTES)
    while data and not data.endswith(b"\n") and len(data) < _LONGEST_LINE:
        more = os.read(fd, _READ_BYTES)
        if not more:
            break
        data += more
    return data
