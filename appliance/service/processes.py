"""The children of `sqlrs-appliance up` (its workers and private redis-server): they die with it,
one `up` at a time serves a data dir, and what an earlier `up` of the same data dir left behind
is found and stopped before anything starts.

- **Death with the supervisor**: each child asks the kernel for SIGKILL when its parent thread
  ends (``PR_SET_PDEATHSIG``), so a supervisor killed with SIGKILL takes its children along. A
  parent that died before the child made that request is caught by comparing the parent pid.
- **One `up` per data dir**: ``up.lock`` in the data dir, held with ``flock`` for the life of the
  supervisor (the kernel drops it when the process dies, however it dies).
- **Leftovers**: ``up.children`` in the data dir records each child's pid with its start time (from
  ``/proc/<pid>/stat``) and the boot it belongs to; the next `up` stops exactly those processes,
  never a pid the kernel has handed to another process since.
"""
from __future__ import annotations

import ctypes
import fcntl
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from appliance.errors import Conflict

log = logging.getLogger(__name__)

LOCK_FILE = "up.lock"  # under data_dir, 0600: flock'd by the running `up`, holds its pid
CHILDREN_FILE = "up.children"  # under data_dir, 0600: the running `up`'s children (JSON)
PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: after fork, nothing may be loaded


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGKILL when the thread that started it ends."""
    parent = os.getpid()

    def _request() -> None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request: nobody would send it
            os.kill(os.getpid(), signal.SIGKILL)
    return _request


# -- one `up` per data dir -------------------------------------------------------------------
class DataDirLock:
    """``up.lock``: taken without waiting; another live `up` holding it is a clear error."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise Conflict(f"another `sqlrs-appliance up` (pid {holder}) is serving {self.path.parent}; "
                           "stop it first (SIGTERM), or give this one another --data-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


# -- who is who in /proc ---------------------------------------------------------------------
@dataclass(frozen=True)
class ChildRecord:
    """A process as the kernel knows it for this boot: its pid alone may be reused."""

    role: str
    pid: int
    start: int  # clock ticks after boot (field 22 of /proc/<pid>/stat)
    boot: str

    @classmethod
    def of(cls, role: str, pid: int) -> ChildRecord | None:
        start = start_time(pid)
        return None if start is None else cls(role, pid, start, boot_id())

    def alive(self) -> bool:
        """Still this very process (not a reused pid), and not a zombie."""
        return self.boot == boot_id() and start_time(self.pid) == self.start and not _zombie(self.pid)


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # after "pid (comm) ": comm may hold spaces


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22 overall; fields[0] is field 3 (state)


def _zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is None or fields[0] in ("Z", "X")


# -- the children file -----------------------------------------------------------------------
def record_children(data_dir: Path, records: Iterable[ChildRecord]) -> None:
    """Replace ``up.children`` in one step, so a reader sees the old list or the new one."""
    path = data_dir / CHILDREN_FILE
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump([asdict(r) for r in records], fh)
    os.replace(staging, path)


def recorded_children(data_dir: Path) -> list[ChildRecord]:
    try:
        return [ChildRecord(**item) for item in json.loads((data_dir / CHILDREN_FILE).read_text())]
    except (OSError, ValueError, TypeError) as exc:
        if not isinstance(exc, FileNotFoundError):
            log.warning("ignoring an unreadable %s: %s", CHILDREN_FILE, exc)
        return []


def stop_leftovers(data_dir: Path, grace: float) -> list[ChildRecord]:
    """Stop the children an earlier `up` of this data dir left running (it was killed before it
    could stop them): SIGTERM, then SIGKILL once ``grace`` has passed. Returns those it found."""
    leftovers = [r for r in recorded_children(data_dir) if r.alive()]
    for record in leftovers:
        log.warning("an earlier `up` of this data dir left its %s running (pid %d): stopping it",
                    record.role, record.pid)
    signal_all([r.pid for r in leftovers], signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(r.alive() for r in leftovers) and time.monotonic() < deadline:
        time.sleep(0.05)
    signal_all([r.pid for r in leftovers if r.alive()], signal.SIGKILL)
    deadline = time.monotonic() + grace  # SIGKILL is not refused, but a process in a syscall may take a while
    while any(r.alive() for r in leftovers) and time.monotonic() < deadline:
        time.sleep(0.05)
    for record in (r for r in leftovers if r.alive()):
        log.error("the leftover %s (pid %d) survived SIGKILL; it may still use this data dir",
                  record.role, record.pid)
    (data_dir / CHILDREN_FILE).unlink(missing_ok=True)
    return leftovers


def signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop_processes(processes: list[subprocess.Popen], grace: float) -> None:
    """SIGTERM to all at once, then one deadline for all of them, then SIGKILL for the rest."""
    live = [p for p in processes if p.poll() is None]
    for proc in live:
        proc.terminate()
    deadline = time.monotonic() + grace
    for proc in live:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
