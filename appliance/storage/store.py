"""The on-disk layout and bookkeeping shared by every snapshot driver.

Layout: ``<root>/orgs/<org>/{states,bases,volumes}/<id>``. Org first, so a path can never
name another org's object and a tenant's bytes are one ``du`` away.

Everything is made under a temporary sibling name (``.tmp-<id>-<random>``) and renamed into
place without replacing anything, so a state, base or volume exists fully or not at all,
whatever the driver and wherever a crash happens; ``sweep_temporaries`` removes the leftovers.
"""
from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from appliance.errors import Conflict, NotFound
from appliance.ids import NAME_PATTERN, is_name
from appliance.shell import cancellable
from appliance.storage.base import SendCommand, SnapshotDriver

_log = logging.getLogger(__name__)
TEMPORARY_PREFIX = ".tmp-"
_KINDS = ("states", "bases", "volumes")

def validate_id(value: str, what: str) -> str:
    """Reject anything that is not one safe path component (no '/', '..', hidden names)."""
    if not is_name(value):
        raise ValueError(f"{what} must match {NAME_PATTERN}, got {value!r}")
    return value


if TYPE_CHECKING:
    from appliance.isolation.identity import OrgIdentities


class SnapshotStore:
    """States, bases and volumes of every org under one root, made by one driver."""

    def __init__(self, root: Path, driver: SnapshotDriver):
        self.root = Path(root)
        self.driver = driver
        # Who an org's volumes belong to on disk (appliance.isolation.identity.OrgIdentities);
        # None: whoever made them (tests of the drivers alone).
        self.identities: OrgIdentities | None = None

    # -- what the driver can do ------------------------------------------------------------
    @property
    def forks_in_use(self) -> bool:
        """Whether :meth:`fork_volume` works (else it raises ``NotSupported``)."""
        return self.driver.forks_in_use

    @property
    def receives(self) -> frozenset[str]:
        """The stream formats :meth:`receive_state` takes, whichever driver sent them."""
        return self.driver.receives

    # -- paths ---------------------------------------------------------------------------
    def state_path(self, org: str, state_id: str) -> Path:
        return self._path(org, "states", validate_id(state_id, "state id"))

    def base_path(self, org: str, base_key: str) -> Path:
        return self._path(org, "bases", validate_id(base_key, "base key"))

    def volume_path(self, org: str, volume_id: str) -> Path:
        return self._path(org, "volumes", validate_id(volume_id, "volume id"))

    def _path(self, org: str, kind: str, name: str) -> Path:
        return self._orgs_dir / validate_id(org, "org") / kind / name

    @property
    def _orgs_dir(self) -> Path:
        return self.root / "orgs"

    def is_volume_path(self, path: Path) -> bool:
        """Whether ``path`` (a real path, as a runtime reports a clone it serves) names a
        volume of this store."""
        path = Path(path)
        return (path.parent.name == "volumes"
                and os.path.dirname(path.parent.parent) == os.path.realpath(self._orgs_dir))

    def volume_paths(self) -> list[Path]:
        """Every volume on disk, of every org (for a teardown that must stop whatever runs)."""
        return [self._orgs_dir / org / "volumes" / name for org, name in self.list_volumes()]

    def disk_space(self) -> tuple[int, int]:
        """``(total, free)`` bytes of the filesystem the store is on (free: for unprivileged use)."""
        fs = os.statvfs(self.root)
        return fs.f_blocks * fs.f_frsize, fs.f_bavail * fs.f_frsize

    # -- volumes -------------------------------------------------------------------------
    def create_volume(self, org: str, volume_id: str) -> Path:
        """An empty writable volume (a fresh ``initdb`` goes here)."""
        return self._hand_over(org, self._make(self.volume_path(org, volume_id), self.driver.create_volume))

    def clone_state(self, org: str, state_id: str, volume_id: str, *, from_org: str | None = None) -> Path:
        """A writable volume of ``org`` holding a copy of a state (another org's, when it shared it)."""
        return self._hand_over(org, self._clone(self.state_path(from_org or org, state_id),
                                                self.volume_path(org, volume_id)))

    def clone_base(self, org: str, base_key: str, volume_id: str) -> Path:
        """A writable volume holding a copy of a base."""
        return self._hand_over(org, self._clone(self.base_path(org, base_key), self.volume_path(org, volume_id)))

    def fork_volume(self, org: str, volume_id: str, new_volume_id: str) -> Path:
        """A writable copy of a volume in use, as a crash at this instant would leave it."""
        source = self.volume_path(org, volume_id)
        if not os.path.isdir(source):
            raise NotFound(f"volume {volume_id} does not exist")
        return self._make(self.volume_path(org, new_volume_id), lambda tmp: self.driver.fork(source, tmp))

    def destroy_volume(self, org: str, volume_id: str) -> None:
        """Idempotent: a clone another process removed meanwhile is no error."""
        path = self.volume_path(org, volume_id)
        try:
            self.driver.destroy(path)
        except Exception:
            if os.path.lexists(path):
                raise

    # -- states and bases ----------------------------------------------------------------
    def commit_state(self, org: str, volume_id: str, state_id: str) -> int:
        """Freeze a volume into a state; returns the state's used bytes."""
        return self._commit(self.volume_path(org, volume_id), self.state_path(org, state_id))

    def commit_base(self, org: str, volume_id: str, base_key: str) -> int:
        """Freeze a volume into a base; returns the base's used bytes."""
        return self._commit(self.volume_path(org, volume_id), self.base_path(org, base_key))

    def destroy_state(self, org: str, state_id: str) -> None:
        self.driver.destroy(self.state_path(org, state_id))

    def destroy_base(self, org: str, base_key: str) -> None:
        self.driver.destroy(self.base_path(org, base_key))

    def has_state(self, org: str, state_id: str) -> bool:
        return os.path.isdir(self.state_path(org, state_id))

    def has_base(self, org: str, base_key: str) -> bool:
        return os.path.isdir(self.base_path(org, base_key))

    # -- streams -------------------------------------------------------------------------
    def send_state_command(self, org: str, state_id: str, parent_state_id: str | None) -> SendCommand:
        """How to stream a state, relative to ``parent_state_id`` when the driver can."""
        state = self.state_path(org, state_id)
        if not os.path.isdir(state):
            raise NotFound(f"state {state_id} does not exist")
        return self.driver.send_command(state, self._parent_state(org, parent_state_id, ""))

    def receive_state(self, org: str, state_id: str, stream: BinaryIO, fmt: str,
                      parent_state_id: str | None) -> int:
        """Make a state from a stream ``send_state_command`` produced; returns its used bytes.

        Received under a temporary name and published only after the stream was read to its
        end (a verifying stream raises there), so a failed or refused stream leaves nothing."""
        parent = self._parent_state(org, parent_state_id, " (the stream's parent)")

        def receive(tmp: Path) -> None:
            self.driver.receive(stream, tmp, fmt, parent)
            while stream.read(1024 * 1024):  # trailing bytes the tool did not need
                pass
        final = self._make(self.state_path(org, state_id), receive)
        return self.driver.used_bytes(final)

    def _parent_state(self, org: str, parent_state_id: str | None, what: str) -> Path | None:
        """The path of a stream's parent state, which must exist; None for a full stream."""
        if parent_state_id is None:
            return None
        parent = self.state_path(org, parent_state_id)
        if not os.path.isdir(parent):
            raise NotFound(f"state {parent_state_id}{what} does not exist")
        return parent

    # -- the whole store -----------------------------------------------------------------
    def activate(self) -> None:
        """Make every volume and snapshot reachable again after a reboot (LVs are neither
        active nor mounted then); a no-op where the filesystem keeps them."""
        self.driver.activate(self.root)

    def destroy_all(self) -> None:
        """Destroy what the filesystem keeps of the store beyond its directories (ZFS datasets),
        for a teardown that then removes the directories."""
        self.driver.destroy_all(self._orgs_dir)

    # -- reconciliation ------------------------------------------------------------------
    def list_volumes(self) -> list[tuple[str, str]]:
        return self._list("volumes")

    def list_states(self) -> list[tuple[str, str]]:
        return self._list("states")

    def list_bases(self) -> list[tuple[str, str]]:
        return self._list("bases")

    def sweep_temporaries(self) -> int:
        """Remove ``.tmp-*`` leftovers of a crash; returns how many were removed.

        Call it at start-up, before any worker commits: an in-flight commit's temporary
        looks exactly like a crash's leftover.
        """
        removed = 0
        for org in self._orgs():
            for kind in _KINDS:
                kind_dir = self._orgs_dir / org / kind
                for entry in _entries(kind_dir):
                    if entry.startswith(TEMPORARY_PREFIX):
                        self.driver.destroy(kind_dir / entry)
                        removed += 1
        return removed

    # -- internals -----------------------------------------------------------------------
    def _hand_over(self, org: str, volume: Path) -> Path:
        """A new writable volume belongs to the org's OS identity before anything runs on it
        (a clone of a state shared by another org, or received from another host, is not yet)."""
        if self.identities is not None:
            self.identities.hand_over(org, volume)
        return volume

    def _commit(self, volume: Path, final: Path) -> int:
        if not os.path.isdir(volume):
            raise NotFound(f"volume {volume.name} does not exist")
        if os.path.lexists(final):
            raise Conflict(f"{final.name} already exists")
        self._make(final, lambda tmp: self.driver.snapshot(volume, tmp))
        return self.driver.used_bytes(final)

    def _clone(self, source: Path, target: Path) -> Path:
        if not os.path.isdir(source):
            raise NotFound(f"{source.name} does not exist")
        return self._make(target, lambda tmp: self.driver.clone(source, tmp))

    def _ensure_dir(self, directory: Path) -> None:
        """Create layout directories 0711 whatever the umask: the unprivileged database user
        must traverse them to reach its own volume, but may not list anyone else's."""
        missing = []
        while not directory.exists() and directory != self.root.parent:
            missing.append(directory)
            directory = directory.parent
        for path in reversed(missing):
            path.mkdir(exist_ok=True)
            path.chmod(0o711)

    def _make(self, final: Path, build: Callable[[Path], None]) -> Path:
        """Build under a temporary sibling name, then rename into place without replacing."""
        if os.path.lexists(final):
            raise Conflict(f"{final.name} already exists")
        self._ensure_dir(final.parent)
        tmp = final.parent / f"{TEMPORARY_PREFIX}{final.name}-{secrets.token_hex(6)}"
        try:
            build(tmp)
            self.driver.publish(tmp, final)
        except BaseException:
            try:
                with cancellable(None):  # a cancelled build must still be able to clean up
                    self.driver.destroy(tmp)
            except Exception:  # keep the original error; sweep_temporaries retries at start-up
                _log.warning("could not remove the temporary %s", tmp, exc_info=True)
            raise
        return final

    def _orgs(self) -> list[str]:
        return [o for o in _entries(self._orgs_dir) if is_name(o)]

    def _list(self, kind: str) -> list[tuple[str, str]]:
        found = []
        for org in self._orgs():
            for name in _entries(self._orgs_dir / org / kind):
                if not name.startswith(TEMPORARY_PREFIX):
                    found.append((org, name))
        return sorted(found)


def _entries(directory: Path) -> list[str]:
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []
