"""What a host gives Postgres beyond its binaries: /dev/shm, disk, memory, System V segments.

Each shortfall makes initdb or a server fail in a way whose message points elsewhere: a full
/dev/shm fails initdb's bootstrap with ``could not resize shared memory segment … No space left
on device`` (initdb's last line only says it removed the data directory), a full disk makes a
server PANIC on its WAL and drop every connection (a client sees ``EOFException`` or ``server
closed the connection``), and memory the kernel will not commit fails ``could not map anonymous
shared memory``. `doctor` reports them, in numbers, with what to do.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024**2
SHM = Path("/dev/shm")
# Postgres's dynamic shared memory (dynamic_shared_memory_type = posix, initdb's choice on
# Linux): each server's control segment, parallel queries and hash joins.
SHM_MIN_FREE = 16 * MIB
SHM_SMALL = 256 * MIB  # a container's default is 64 MiB
DISK_MIN_FREE = 1024 * MIB
MEMORY_MIN = 512 * MIB


@dataclass
class Resources:
    facts: list[str] = field(default_factory=list)  # what the host has, in numbers
    problems: list[str] = field(default_factory=list)  # what will make initdb or servers fail
    notes: list[str] = field(default_factory=list)  # what is worth knowing but works


def _mib(value: int) -> str:
    return f"{value // MIB} MiB"


def check_shm(found: Resources, shm: Path = SHM) -> None:
    try:
        st = os.statvfs(shm)
    except OSError as exc:
        found.problems.append(f"{shm} cannot be used ({exc.strerror}): Postgres keeps its dynamic shared memory "
                              "there; mount a tmpfs on it")
        return
    size, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    segments = [p for p in _entries(shm) if p.name.startswith("PostgreSQL.")]
    found.facts.append(f"{shm} {_mib(size)} ({_mib(free)} free, {len(segments)} Postgres segment(s))")
    advice = ("remove the PostgreSQL.* segments of servers that no longer run, or enlarge it "
              "(a container: --shm-size=1g; a host: size= of its tmpfs)")
    if free < SHM_MIN_FREE:
        found.problems.append(
            f"only {_mib(free)} free in {shm}: initdb fails with 'could not resize shared memory segment … No space "
            f"left on device' and servers cannot start; {advice}")
    elif size < SHM_SMALL:
        found.notes.append(f"{shm} is small ({_mib(size)}) for many servers with parallel queries; {advice}")


def check_disk(found: Resources, path: Path) -> None:
    existing = Path(os.path.abspath(path))
    while not existing.exists():
        existing = existing.parent
    st = os.statvfs(existing)
    free = st.f_bavail * st.f_frsize
    found.facts.append(f"{_mib(free)} free on the store's filesystem")
    if free < DISK_MIN_FREE:
        found.problems.append(
            f"only {_mib(free)} free for the store ({path}): initdb fails with 'No space left on device' and a "
            "server that cannot write its WAL stops (PANIC), dropping every connection")


def check_memory(found: Resources, meminfo: Path = Path("/proc/meminfo"),
                 overcommit: Path = Path("/proc/sys/vm/overcommit_memory")) -> None:
    info = {}
    for line in meminfo.read_text().splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            info[name] = int(parts[0]) * 1024
    available = info.get("MemAvailable", 0)
    mode = overcommit.read_text().strip() if overcommit.exists() else "0"
    found.facts.append(f"{_mib(available)} memory available, vm.overcommit_memory={mode}")
    if available < MEMORY_MIN:
        found.problems.append(f"only {_mib(available)} of memory available: the OOM killer ends servers "
                              "mid-statement (a client sees its connection drop)")
    headroom = info.get("CommitLimit", 0) - info.get("Committed_AS", 0)
    if mode == "2" and headroom < MEMORY_MIN:
        found.problems.append(f"vm.overcommit_memory=2 leaves {_mib(max(headroom, 0))} to commit: servers fail "
                              "with 'could not map anonymous shared memory: Cannot allocate memory'")


def check_sysv(found: Resources, proc: Path = Path("/proc")) -> None:
    """Each server holds one small System V segment (its interlock); kernel.shmmni caps them."""
    limit_file, table = proc / "sys/kernel/shmmni", proc / "sysvipc/shm"
    if not limit_file.exists() or not table.exists():
        return
    limit = int(limit_file.read_text().split()[0])
    used = max(len(table.read_text().splitlines()) - 1, 0)
    if limit - used < 16:
        found.problems.append(f"{used} of kernel.shmmni={limit} System V segments are taken: each server needs "
                              "one; raise kernel.shmmni or remove stale segments (ipcs -m)")


def host_resources(store: Path) -> Resources:
    found = Resources()
    check_shm(found)
    check_disk(found, store)
    check_memory(found)
    check_sysv(found)
    return found


def _entries(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except OSError:
        return []
