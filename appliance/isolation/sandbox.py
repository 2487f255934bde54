"""A private mount view for code that runs a member's input: psql, Liquibase, and on the process
runtime the Postgres server (whose ``COPY … PROGRAM``, untrusted languages and ``pg_read_file``
act as it).

Inside, the host is read-only system files only (``/usr``, the merged-``/usr`` links and a few
``/etc`` files name-service and the JVM need); ``/tmp`` and ``/dev/shm`` are private and empty;
the only host paths are the ones named: the job's source, read-only, and the cluster's own
volume and socket directory. The appliance's data dir, other orgs' volumes, sockets and sources,
the Control DB, tokens and keys are not in the view at all; together with the org's own OS
identity (``identity``) and no new privileges, nothing an org runs can read or write them.

bubblewrap runs as the org's (unprivileged) identity and makes a user namespace for the mount
view, so it needs no setuid bit; ``level`` checks the host allows that before anything relies
on it. Paths are bound at their real path, so a server's working directory reads the same from
the host (the runtimes find their servers through ``/proc/<pid>/cwd``).
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

_MERGED_USR = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What name service, the dynamic linker, time zones and the JVM read; nothing that configures
# the appliance (its settings file, tokens and keys live elsewhere and are never bound).
_ETC = ("/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/hosts", "/etc/localtime",
        "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
        "/etc/java-17-openjdk", "/etc/ssl/certs", "/etc/ca-certificates")
# A server needs only name service, the linker and the time zone; every bind costs a cache hit
# time, so its view is the smallest that runs.
_SERVER_ETC = ("/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/localtime", "/etc/ld.so.cache")


@dataclass(frozen=True)
class Sandbox:
    """Wraps argv lists in bubblewrap; ``enabled=False`` returns them unchanged (isolation none)."""

    enabled: bool
    bwrap: str = "bwrap"

    def client(self, argv: Sequence[str], *, cwd: Path, read_only: Iterable[Path] = (),
               writable: Iterable[Path] = (), network: bool = False) -> list[str]:
        """A short-lived tool (psql, Liquibase): its own pid namespace and /proc, dies with its
        parent (so a cancelled job kills it), no network unless it needs TCP (JDBC)."""
        if not self.enabled:
            return [os.fspath(a) for a in argv]
        prefix = [self.bwrap, "--unshare-user", "--unshare-ipc", "--unshare-uts", "--unshare-pid",
                  "--unshare-cgroup-try", "--die-with-parent", "--new-session"]  # no TIOCSTI into a terminal
        if not network:
            prefix.append("--unshare-net")
        prefix += _system_view() + ["--proc", "/proc"]
        prefix += _binds(read_only, writable) + ["--chdir", _real(cwd), "--"]
        return prefix + [os.fspath(a) for a in argv]

    def server(self, argv: Sequence[str], *, writable: Iterable[Path]) -> list[str]:
        """A Postgres server, started detached: it outlives the wrapper, keeps the host's pid and
        network namespaces (the runtime signals it by pid; instances listen on TCP) and sees only
        its volume and socket directory."""
        if not self.enabled:
            return [os.fspath(a) for a in argv]
        prefix = [self.bwrap, "--unshare-user", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        prefix += _system_view(_SERVER_ETC, private=("/tmp",)) + _binds((), writable) + ["--chdir", "/", "--"]
        return prefix + [os.fspath(a) for a in argv]

    def available(self) -> bool:
        return shutil.which(self.bwrap) is not None


def real(path: Path) -> Path:
    """Where a path really is: the name servers and tools use inside the view."""
    return Path(os.path.realpath(path))


def _real(path: Path) -> str:
    return os.fspath(real(path))


def _system_view(etc: Sequence[str] = _ETC,
                 private: Sequence[str] = ("/dev/shm", "/tmp", "/var/tmp")) -> list[str]:
    """System files read-only, a private /dev (bubblewrap's, with its own empty /dev/shm) and
    private, empty temporary directories."""
    view = ["--ro-bind", "/usr", "/usr"]
    for path in _MERGED_USR:
        if os.path.islink(path):
            view += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            view += ["--ro-bind", path, path]
    for path in etc:
        if os.path.exists(path):
            view += ["--ro-bind", path, path]
    view += ["--dev", "/dev"]
    for path in private:
        view += ["--tmpfs", path]
    return view


def _binds(read_only: Iterable[Path], writable: Iterable[Path]) -> list[str]:
    binds: list[str] = []
    for path in read_only:
        binds += ["--ro-bind", _real(path), _real(path)]
    for path in writable:
        binds += ["--bind", _real(path), _real(path)]
    return binds
