"""The storage driver Protocol and the layout every driver shares.

Drivers implement five primitives over absolute paths. ``SnapshotStore`` owns the
layout (org prefix, states, bases, volumes) and the atomic commit of a snapshot, so a
state directory exists fully or not at all, whatever the driver.

What a driver can do beyond the primitives it declares (``forks_in_use``, ``receives``), and
what it cannot raises :class:`appliance.errors.NotSupported`: callers ask the capability, never
the driver's name.
"""
from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from appliance.errors import Conflict, NotSupported


@dataclass(frozen=True)
class SendCommand:
    """How a driver streams one snapshot: a program writing the stream to stdout."""

    argv: list[str]
    format: str  # e.g. "tar", "btrfs-send", "zfs-send"; stored in the export manifest
    parent: Path | None  # the snapshot the stream is relative to; None for a full stream


@runtime_checkable
class SnapshotDriver(Protocol):
    name: str
    forks_in_use: bool  # whether ``fork`` works (an atomic snapshot of a volume being written)
    receives: frozenset[str]  # the stream formats ``receive`` takes, whichever driver sent them

    def create_volume(self, path: Path) -> None:
        """Create an empty writable volume at ``path`` (parent exists, path does not)."""

    def snapshot(self, volume: Path, target: Path) -> None:
        """Freeze ``volume`` into a read-only snapshot at ``target`` (path does not exist)."""

    def clone(self, snapshot: Path, target: Path) -> None:
        """Make a writable volume at ``target`` from a snapshot, as cheaply as the fs allows."""

    def destroy(self, path: Path) -> None:
        """Remove a volume or snapshot; a missing path is not an error."""

    def used_bytes(self, path: Path) -> int:
        """Bytes a volume or snapshot refers to."""

    def publish(self, staged: Path, final: Path) -> None:
        """Move a finished volume or snapshot from its temporary name to its final one,
        atomically and never replacing anything (raise ``Conflict`` if ``final`` exists)."""

    def send_command(self, snapshot: Path, parent: Path | None) -> SendCommand:
        """How to stream ``snapshot``: relative to ``parent`` when the driver can, else full."""

    def receive(self, stream: BinaryIO, staged: Path, fmt: str, parent: Path | None) -> None:
        """Create the read-only snapshot ``staged`` from a stream ``send_command`` produced."""

    def activate(self, root: Path) -> None:
        """Make every volume and snapshot under ``root`` reachable again after a reboot."""

    def destroy_all(self, top: Path) -> None:
        """Destroy what the filesystem keeps of everything under ``top`` beyond its directory
        tree (datasets), so removing the directory removes it all (destroying an appliance)."""

    def fork(self, volume: Path, target: Path) -> None:
        """A writable copy of ``volume`` while it is in use, taken at one instant: what a crash
        at that instant would leave (Postgres recovers it). ``NotSupported`` where the fs cannot."""


class DriverBase:
    """What drivers over plain directories share; a driver overrides what its fs does better.

    Streaming is opt-in: a driver that cannot stream says so with ``NotSupported``."""

    name = "base"
    forks_in_use = False
    receives: frozenset[str] = frozenset()

    def publish(self, staged: Path, final: Path) -> None:
        rename_no_replace(staged, final)

    def activate(self, root: Path) -> None:
        """Directories and subvolumes survive a reboot as they are: nothing to do."""

    def destroy_all(self, top: Path) -> None:
        """Directories and subvolumes go with the directory tree: nothing to do."""

    def send_command(self, snapshot: Path, parent: Path | None) -> SendCommand:
        raise NotSupported(f"the {self.name} driver cannot stream snapshots")

    def receive(self, stream: BinaryIO, staged: Path, fmt: str, parent: Path | None) -> None:
        raise NotSupported(f"the {self.name} driver cannot receive snapshot streams")

    def fork(self, volume: Path, target: Path) -> None:
        raise NotSupported(f"the {self.name} driver cannot copy a volume in use at one instant")


_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def rename_no_replace(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``, raising :class:`Conflict` if ``target`` exists.

    Plain ``os.rename`` silently replaces an empty directory, so two writers racing for
    the same state id could both "win"; ``renameat2(RENAME_NOREPLACE)`` makes the check and
    the rename one atomic step. Falls back to check-then-rename where it is unsupported.
    """
    if _renameat2 is not None:
        rc = _renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE)
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise Conflict(f"{target.name} already exists", {"path": str(target)})
        if err not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(err, os.strerror(err), str(source), None, str(target))
    if os.path.lexists(target):
        raise Conflict(f"{target.name} already exists", {"path": str(target)})
    os.rename(source, target)
