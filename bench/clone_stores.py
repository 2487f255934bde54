"""Throwaway snapshot stores for the clone benchmark: btrfs on a loop-mounted image, zfs on a
file-backed pool. Each is a context manager that yields a ready ``SnapshotStore`` and removes
everything it made on the way out (errors and Ctrl+C included).

Both back onto sparse files under the bench's own directory, so the two stores see the same
disk; neither touches any pool or mount it did not create.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import CommandFailed, NotSupported
from appliance.shell import Runner
from appliance.storage.btrfs import BtrfsDriver
from appliance.storage.image import unmount as unmount_image
from appliance.storage.store import SnapshotStore
from appliance.storage.zfs import ZfsDriver, run_while_busy
from appliance.storage.zfs import unmount as unmount_dataset

STORE_BYTES = 8 * 1024**3
_DAEMON_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class BenchStore:
    kind: str  # "btrfs" | "zfs"
    description: str  # for the report: what the states live on
    store: SnapshotStore


class StoreUnavailable(NotSupported):
    """The machine cannot provide this kind of store (missing tools, kernel support, daemon)."""


def _public_dir(path: Path, mode: int) -> Path:
    """A directory the unprivileged Postgres user can traverse, whatever the umask."""
    path.mkdir(exist_ok=True)
    path.chmod(mode)
    return path


def _sparse_file(path: Path, size_bytes: int) -> None:
    with open(path, "wb") as fh:
        fh.truncate(size_bytes)


@contextlib.contextmanager
def btrfs_store(runner: Runner, directory: Path, size_bytes: int = STORE_BYTES) -> Iterator[BenchStore]:
    """A fresh btrfs filesystem on a sparse image, loop-mounted, with the store at its root."""
    image, mountpoint = directory / "btrfs.img", _public_dir(directory / "btrfs", 0o755)
    _sparse_file(image, size_bytes)
    try:
        try:
            runner(["mkfs.btrfs", "-q", str(image)])
            runner(["mount", "-o", "loop", str(image), str(mountpoint)])
        except (CommandFailed, FileNotFoundError) as exc:
            raise StoreUnavailable(f"cannot mount a btrfs image: {exc}") from exc
        try:
            root = _public_dir(mountpoint / "store", 0o711)
            mountpoint.chmod(0o755)
            yield BenchStore("btrfs", f"btrfs (sparse {size_bytes / 1024**3:.0f} GiB image, loop-mounted)",
                             SnapshotStore(root, BtrfsDriver(runner)))
        finally:
            unmount_image(mountpoint, runner)
    finally:
        image.unlink(missing_ok=True)


def ensure_zfs_daemon(runner: Runner) -> None:
    """zfs-fuse needs its daemon; start it when ``zpool`` cannot reach one (OpenZFS never
    gets here: its ``zpool list`` works without a daemon)."""
    try:
        runner(["zpool", "list", "-H", "-o", "name"])
        return
    except FileNotFoundError as exc:
        raise StoreUnavailable("the zfs tools are not installed") from exc
    except CommandFailed:
        pass
    if shutil.which("zfs-fuse") is None:
        raise StoreUnavailable("zpool cannot reach zfs and there is no zfs-fuse daemon to start")
    runner(["zfs-fuse"])
    deadline = time.monotonic() + _DAEMON_WAIT_SECONDS
    while runner(["zpool", "list", "-H", "-o", "name"], check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise StoreUnavailable("started zfs-fuse, but zpool still cannot reach it")
        time.sleep(0.2)


@contextlib.contextmanager
def zfs_store(runner: Runner, directory: Path, size_bytes: int = STORE_BYTES) -> Iterator[BenchStore]:
    """A new pool on a sparse file (unique name), the store on its ``store`` dataset; the pool
    is destroyed afterwards."""
    ensure_zfs_daemon(runner)
    pool = f"sqlrsbench{os.getpid()}{secrets.token_hex(3)}"
    image, mountpoint = directory / f"{pool}.img", directory / pool
    _sparse_file(image, size_bytes)
    try:
        try:
            runner(["zpool", "create", "-m", str(mountpoint), pool, str(image)])
        except CommandFailed as exc:
            raise StoreUnavailable(f"cannot create a file-backed pool: {exc}") from exc
        try:
            mountpoint.chmod(0o755)
            runner(["zfs", "create", f"{pool}/store"])
            root = mountpoint / "store"
            root.chmod(0o711)
            version = _pool_version(runner, pool)
            yield BenchStore("zfs", f"zfs (file-backed {size_bytes / 1024**3:.0f} GiB pool, version {version})",
                             SnapshotStore(root, ZfsDriver(runner, f"{pool}/store")))
        finally:
            unmount_dataset(runner, pool)
            run_while_busy(runner, ["zpool", "destroy", "-f", pool])
    finally:
        image.unlink(missing_ok=True)
        shutil.rmtree(mountpoint, ignore_errors=True)


def _pool_version(runner: Runner, pool: str) -> str:
    """The pool's on-disk version ("-" on feature-flag pools); zfs-fuse's ``zpool get`` has no
    ``-H``, so the table is parsed."""
    lines = runner(["zpool", "get", "version", pool]).stdout.splitlines()
    fields = lines[-1].split() if len(lines) > 1 else []
    return fields[2] if len(fields) > 2 else "?"
