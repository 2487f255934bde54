"""A cluster's server on this host, as its files and /proc tell it: postmaster.pid, and the
processes whose working directory is the cluster's pgdata.

Every runtime's pgdata is on this host (a container's or a Nomad task's through a bind mount),
so every runtime reads readiness from postmaster.pid and clears a stale one the same way.
"""
from __future__ import annotations

import os
from pathlib import Path

from appliance.runtime.tenant_files import read_head

_PM_STATUS_LINE = 7  # postmaster.pid line 8: starting | stopping | ready | standby


def postmaster_pid_lines(pgdata: Path) -> list[str]:
    """postmaster.pid's lines, or [] while there is none (not written yet, or removed), or while
    something else than a regular file stands there (the org's code may put a FIFO there)."""
    try:
        return read_head(pgdata / "postmaster.pid").decode(errors="replace").splitlines()
    except OSError:
        return []


def says_ready(lines: list[str]) -> bool:
    """Whether postmaster.pid reports the server ready for connections: polling it every few ms
    is much faster than ``pg_ctl -w``'s 100 ms, and works through a container's bind mount."""
    return len(lines) > _PM_STATUS_LINE and lines[_PM_STATUS_LINE].strip() == "ready"


def is_cluster_process(pid: int, real_pgdata: str) -> bool:
    """A live (not zombie) postgres process whose working directory is this pgdata.

    Postgres chdirs into its data directory, which tells our clusters apart from each
    other and from an unrelated process that inherited a stale pid."""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd").removesuffix(" (deleted)")  # a clone removed under it
        exe = os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        return False
    # A server whose org moved its pgdata aside (``mv pgdata x``) runs in its volume all the same.
    in_volume = cwd == real_pgdata or cwd.startswith(os.path.dirname(real_pgdata) + "/")
    return in_volume and os.path.basename(exe) in ("postgres", "postmaster")


def real_pgdata(pgdata: Path) -> str:
    """The real path of a pgdata, its last component not followed: the org may have replaced its
    pgdata by a link to another org's, whose servers must never be taken for this one's."""
    return os.path.join(os.path.realpath(pgdata.parent), pgdata.name)


def cluster_pids(pgdata: Path) -> list[int]:
    real = real_pgdata(pgdata)
    return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit() and is_cluster_process(int(e.name), real)]


def remove_stale_pidfile(pgdata: Path) -> None:
    """Drop postmaster.pid once no process of the cluster is alive.

    Postgres's own check is ``kill(pid, 0)``, which an unreaped zombie postmaster (its
    parent is whoever adopted it) passes, so it would refuse to start forever. We only
    get here after proving no process has this pgdata as its working directory, which is
    what the lock file protects against.
    """
    if not cluster_pids(pgdata) and not os.path.islink(pgdata):
        (pgdata / "postmaster.pid").unlink(missing_ok=True)
