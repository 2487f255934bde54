"""The storage driver Protocol and the layout every driver shares.

Drivers implement five primitives over absolute paths. ``SnapshotStore`` owns the
layout (org prefix, states, bases, volumes) and the atomic commit of a snapshot, so a
state directory exists fully or not at all, whatever the driver.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class SnapshotDriver(Protocol):
    name: str

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
