"""One OS identity per org: every Postgres server, psql and Liquibase of an org runs as it.

With ``os`` isolation an org's code (``COPY … TO PROGRAM``, ``\\!`` …) runs as a uid no other
org shares: another org's 0700 data directories and socket directories are closed to it by the
kernel, whatever it finds out about their paths. The users are made on first use, on each host,
named ``sqlrs-o`` + a digest of the org (Linux user names are short and lower-case; the org's
name is not written anywhere: /etc/passwd is world-readable, and orgs must not learn of each
other; an operator computes it: ``sqlrs-o`` + the first 12 hex digits of SHA-256(org)), with a uid from ``tenant_uid_min``…``max``
and a group of their own. Uids need not match across hosts: a state arriving from elsewhere is
handed over to the local org's identity when it is cloned (``hand_over``).

With isolation ``none`` every org shares ``fallback`` (the instance OS user), as before.
"""
from __future__ import annotations

import grp
import hashlib
import os
import pwd
import threading
from pathlib import Path

from appliance.errors import CommandFailed, InternalError
from appliance.shell import RunAs, Runner

_NAME_PREFIX = "sqlrs-o"


def user_name(org: str) -> str:
    """The OS user name of an org: stable, lower-case, 19 characters, whatever the org's name."""
    return _NAME_PREFIX + hashlib.sha256(org.encode()).hexdigest()[:12]


class OrgIdentities:
    """org → the :class:`RunAs` its code runs as (``None``: the current user, when not root)."""

    def __init__(self, runner: Runner, *, per_org: bool, fallback: RunAs | None,
                 uid_min: int = 200000, uid_max: int = 299999):
        self._runner = runner
        self.per_org = per_org
        self.fallback = fallback
        self._uid_min, self._uid_max = uid_min, uid_max
        self._known: dict[str, RunAs] = {}
        self._lock = threading.Lock()

    def of(self, org: str) -> RunAs | None:
        if not self.per_org:
            return self.fallback
        known = self._known.get(org)
        if known is not None:
            return known
        with self._lock:  # two threads of one worker making the same user
            identity = self._lookup(org) or self._create(org)
            self._known[org] = identity
            return identity

    def owns(self, identity: RunAs | None, path: Path) -> bool:
        st = os.lstat(path)
        return identity is None or (st.st_uid, st.st_gid) == (identity.uid, identity.gid)

    def hand_over(self, org: str, volume: Path) -> None:
        """Make ``volume`` (a fresh clone, not yet running) the org's: its own clones already
        are; a clone of a state another org shared, or that came from another host, is
        re-owned file by file."""
        identity = self.of(org)
        if identity is None:
            return
        top_owned = self.owns(identity, volume)
        pgdata = volume / "pgdata"
        if top_owned and (not pgdata.exists() or self.owns(identity, pgdata)):
            return
        for directory, dirs, files in os.walk(volume):
            os.lchown(directory, identity.uid, identity.gid)
            for name in files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]:
                os.lchown(os.path.join(directory, name), identity.uid, identity.gid)

    def group_dir(self, org: str, directory: Path, mode: int = 0o750) -> None:
        """``directory`` readable by the org's identity alone (and root): root-owned, the org's
        group, ``mode`` — the org's tools read it, nothing of theirs may change it."""
        identity = self.of(org)
        directory.mkdir(parents=True, exist_ok=True)
        if identity is not None and self.per_org:
            os.chown(directory, 0, identity.gid)
            os.chmod(directory, mode)
        else:
            os.chmod(directory, 0o755)

    # -- users ---------------------------------------------------------------------------
    def _lookup(self, org: str) -> RunAs | None:
        try:
            entry = pwd.getpwnam(user_name(org))
        except KeyError:
            return None
        return RunAs(entry.pw_uid, entry.pw_gid)

    def _create(self, org: str) -> RunAs:
        """``groupadd`` + ``useradd`` with the lowest free id; another worker making the same
        user, or another tool taking the same id, only costs a retry."""
        name = user_name(org)
        for _ in range(20):
            uid = str(self._free_uid())
            for argv in (["groupadd", "-g", uid, name],
                         ["useradd", "-u", uid, "-g", name, "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin",
                          "-c", "sqlrs org", name]):
                try:
                    self._runner(argv)
                except CommandFailed:
                    pass  # the name exists (a race we lost, or a group left by a lost race) or the id is taken
            found = self._lookup(org)
            if found is not None:
                return found
        raise InternalError(f"could not make an OS user for org {org} with a uid in {self._uid_min}-{self._uid_max}")

    def _free_uid(self) -> int:
        taken = {entry.pw_uid for entry in pwd.getpwall()} | {entry.gr_gid for entry in grp.getgrall()}
        for uid in range(self._uid_min, self._uid_max + 1):
            if uid not in taken:
                return uid
        raise InternalError(f"no free uid left in {self._uid_min}-{self._uid_max} for a new org")
