"""The btrfs driver: volumes are subvolumes, states are read-only subvolume snapshots.

A snapshot or clone is a new tree root sharing every block with its source, so both are
O(1) whatever the database size. All commands go through the runner as argv lists.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..shell import Runner
from .base import DriverBase
from .copy import remove_tree

# The root directory of every btrfs subvolume has this inode number (BTRFS_FIRST_FREE_OBJECTID).
_SUBVOLUME_ROOT_INODE = 256


def is_subvolume(path: Path) -> bool:
    """True when ``path`` is the root of a subvolume (not a plain directory inside one)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return st.st_ino == _SUBVOLUME_ROOT_INODE and os.path.isdir(path) and not os.path.islink(path)


class BtrfsDriver(DriverBase):
    """Snapshot and clone with ``btrfs subvolume snapshot``."""

    name = "btrfs"

    def __init__(self, runner: Runner):
        self._run = runner

    def create_volume(self, path: Path) -> None:
        self._run(["btrfs", "subvolume", "create", str(path)])

    def snapshot(self, volume: Path, target: Path) -> None:
        self._run(["btrfs", "subvolume", "snapshot", "-r", str(volume), str(target)])

    def clone(self, snapshot: Path, target: Path) -> None:
        self._run(["btrfs", "subvolume", "snapshot", str(snapshot), str(target)])

    def destroy(self, path: Path) -> None:
        """Delete a subvolume (read-only ones too, as root); a plain directory left by a crash
        (e.g. a half-made copy) is removed as a tree; a missing path is not an error."""
        if not os.path.lexists(path):
            return
        if is_subvolume(path):
            self._run(["btrfs", "subvolume", "delete", str(path)])
        else:
            remove_tree(path)

    def used_bytes(self, path: Path) -> int:
        """Bytes of data extents the subvolume refers to, shared or not."""
        out = self._run(["btrfs", "filesystem", "du", "-s", "--raw", str(path)]).stdout
        # Header line, then "<total> <exclusive> <set shared> <path>".
        for line in out.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0].isdigit():
                return int(fields[0])
        raise ValueError(f"unexpected 'btrfs filesystem du' output for {path}: {out!r}")
