"""Whether the users clusters run as can reach the data dir and the store at all.

A cluster's files live under the data dir (or the store root, or a ZFS mountpoint) and its tools
run as an org's OS user (isolation ``os``: a uid of its own, in no group of the path, so only
the "others" bits count) or as the instance OS user (isolation ``none``). Every directory above
those roots must let them pass (``x``); otherwise `up` would start and the first prepare fail with
``initdb: could not access directory …: Permission denied``. `up` refuses to start and `doctor`
reports it, naming the directory and the command that fixes it. ACLs are not consulted.
"""
from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import InvalidArgument
from appliance.isolation.level import Isolation
from appliance.settings import Settings


@dataclass(frozen=True)
class Traverser:
    """Who must pass: ``uid`` None is a uid that owns nothing on the path and is in none of its
    groups (the org users), so only the "others" bits let it through."""

    name: str
    uid: int | None = None
    gids: frozenset[int] = frozenset()


def cluster_users(settings: Settings, isolation: Isolation) -> list[Traverser]:
    """The users clusters and their tools run as; none when the appliance is not root (then
    everything runs as the user that made the data dir)."""
    if isolation.level == "os":
        return [Traverser(f"the org users (uids {settings.tenant_uid_min}-{settings.tenant_uid_max})")]
    fallback = isolation.identities.fallback
    if fallback is None:
        return []
    name = pwd.getpwuid(fallback.uid).pw_name
    return [Traverser(f"the instance user {name}", fallback.uid, frozenset(os.getgrouplist(name, fallback.gid)))]


def _ancestors(root: Path) -> list[Path]:
    """The existing directories above ``root``, from ``/`` down, as written and as resolved
    (both are walked: the one to reach the link, the other to reach its target)."""
    found: list[Path] = []
    for path in (Path(os.path.abspath(root)), Path(os.path.realpath(root))):
        for parent in reversed(path.parents):
            if parent.is_dir() and parent not in found:
                found.append(parent)
    return found


def _passes(directory: Path, who: Traverser) -> bool:
    st = directory.stat()
    if who.uid is not None and st.st_uid == who.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if who.uid is not None and st.st_gid in who.gids:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def untraversable(roots: list[Path], users: list[Traverser]) -> list[str]:
    """One sentence for each directory above ``roots`` that one of ``users`` cannot pass."""
    own = {Path(f(r)) for r in roots for f in (os.path.abspath, os.path.realpath)}  # `up` makes them 0711
    above: dict[Path, Path] = {}  # each directory once, with the first root it leads to
    for root in roots:
        for directory in _ancestors(root):
            if directory not in own:
                above.setdefault(directory, root)
    problems = []
    for directory, root in above.items():
        for who in users:
            if not _passes(directory, who):
                st = directory.stat()
                problems.append(
                    f"{who.name} cannot traverse {directory} (mode {stat.S_IMODE(st.st_mode):04o}, owner uid "
                    f"{st.st_uid}), above {root}: run `chmod o+x {directory}` or choose a directory every "
                    "user can traverse")
    return problems


def roots_of(settings: Settings, store_root: Path) -> list[Path]:
    """The directories clusters are reached through: the data dir and the store root (which is
    the ZFS dataset's mountpoint with the zfs driver)."""
    return list(dict.fromkeys([settings.data_dir, store_root]))


def require_traversable(settings: Settings, isolation: Isolation, store_root: Path) -> None:
    """Refuse to serve from a data dir or store the cluster users cannot reach."""
    problems = untraversable(roots_of(settings, store_root), cluster_users(settings, isolation))
    if problems:
        raise InvalidArgument("clusters could not reach their files: " + "; ".join(problems))
