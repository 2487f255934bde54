"""The portable driver: volumes and snapshots are plain directory trees.

``cp -a --reflink=auto`` shares blocks where the filesystem can (XFS, btrfs) and makes a
real copy elsewhere (ext4), so this driver is correct everywhere and fast where it can be.
Snapshots are not made read-only: changing modes would break "modes preserved exactly"
(Postgres refuses a data directory that is not 0700), so immutability of states is kept
by the store's layout, which never hands out a state path for writing.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO

from appliance.errors import InvalidArgument
from appliance.shell import Runner
from appliance.storage.base import DriverBase, SendCommand

TAR_FORMAT = "tar"


def remove_tree(path: Path) -> None:
    """Remove a directory tree, or a file, even when parts of it are read-only; missing is fine.

    Unprivileged callers cannot unlink inside a 0500 directory, so on a permission error
    the parent is made writable and the removal retried.
    """
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path) or os.path.islink(path):
        os.unlink(path)
        return

    def make_writable_and_retry(func, failed: str, exc_info) -> None:
        exc = exc_info[1]
        if isinstance(exc, FileNotFoundError):
            return
        if not isinstance(exc, PermissionError):
            raise exc
        parent = os.path.dirname(failed)
        os.chmod(parent, os.stat(parent).st_mode | stat.S_IRWXU)
        if os.path.isdir(failed) and not os.path.islink(failed):
            os.chmod(failed, os.stat(failed).st_mode | stat.S_IRWXU)
            shutil.rmtree(failed, onerror=make_writable_and_retry)
        else:
            func(failed)

    shutil.rmtree(path, onerror=make_writable_and_retry)


def du_bytes(path: Path, runner: Runner) -> int:
    """Apparent size of a tree in bytes, as ``du -sb`` reports it."""
    out = runner(["du", "-sb", "--", str(path)]).stdout
    try:
        return int(out.split()[0])
    except (IndexError, ValueError) as exc:  # pragma: no cover - du always prints a number
        raise OSError(errno.EIO, f"unexpected du output for {path}: {out!r}") from exc


class CopyDriver(DriverBase):
    """Snapshot and clone by copying; CoW where the filesystem supports reflinks."""

    name = "copy"
    receives = frozenset({TAR_FORMAT})  # the stream format is what matters, not which driver wrote it

    def __init__(self, runner: Runner):
        self._run = runner

    def create_volume(self, path: Path) -> None:
        os.mkdir(path, 0o755)

    def snapshot(self, volume: Path, target: Path) -> None:
        self._copy(volume, target)

    def clone(self, snapshot: Path, target: Path) -> None:
        self._copy(snapshot, target)

    def destroy(self, path: Path) -> None:
        remove_tree(path)

    def used_bytes(self, path: Path) -> int:
        return du_bytes(path, self._run)

    def send_command(self, snapshot: Path, parent: Path | None) -> SendCommand:
        """A full tar of the snapshot directory (plain directories have no cheap delta).

        Numeric owners, because the receiving host may map names to other ids; "." as the
        member list carries the top directory's own owner and 0700 mode, which Postgres needs."""
        return SendCommand(["tar", "--create", "--file=-", "--numeric-owner", "--sparse",
                            f"--directory={snapshot}", "."], TAR_FORMAT, None)

    def receive(self, stream: BinaryIO, staged: Path, fmt: str, parent: Path | None) -> None:
        if fmt != TAR_FORMAT:
            raise InvalidArgument(f"the {self.name} driver cannot receive a {fmt!r} stream")
        os.mkdir(staged, 0o700)
        # Owners are restored when we are root (tar's default then), modes always.
        self._run.pipe_into(["tar", "--extract", "--file=-", "--numeric-owner", "--same-permissions",
                             f"--directory={staged}"], stream)

    def _copy(self, source: Path, target: Path) -> None:
        # "source/." copies the directory itself (owner, mode, times, xattrs) into a new
        # ``target`` and fails for a non-directory, instead of silently copying a file.
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "snapshot target exists", str(target))
        self._run(["cp", "-a", "--reflink=auto", "--", f"{source}/.", str(target)])
