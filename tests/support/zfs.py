"""A real ZFS pool for tests: zfs-fuse here (pool v23), OpenZFS elsewhere."""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import pytest

from appliance.errors import CommandFailed
from appliance.shell import Runner

ZFS_POOL_BYTES = 512 * 1024**2


def zfs_unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"zfs must work in CI, but: {reason}")
    pytest.skip(f"!!! SKIPPING zfs tests: no working zfs here ({reason}); they need the zfs tools "
                "and a running zfs daemon (zfs-fuse: see scripts/install-deps) !!!")


@contextlib.contextmanager
def file_backed_pool(runner: Runner, directory: Path, size_bytes: int = ZFS_POOL_BYTES):
    """A new pool on a sparse file, with a dataset ``<pool>/store``; destroyed afterwards.

    The pool name is unique per run, so parallel or crashed runs never collide."""
    try:
        runner(["zpool", "list", "-H", "-o", "name"])
    except (CommandFailed, FileNotFoundError) as exc:
        zfs_unavailable(str(exc))
    pool = f"sqlrstest{os.getpid()}{secrets.token_hex(3)}"
    image, mountpoint = directory / f"{pool}.img", directory / pool
    with open(image, "wb") as fh:
        fh.truncate(size_bytes)
    try:
        runner(["zpool", "create", "-m", str(mountpoint), pool, str(image)])
    except CommandFailed as exc:
        image.unlink()
        zfs_unavailable(str(exc))
    try:
        runner(["zfs", "create", f"{pool}/store"])
        yield f"{pool}/store", mountpoint / "store"
    finally:
        from appliance.storage.zfs import run_while_busy, unmount

        unmount(runner, pool)
        run_while_busy(runner, ["zpool", "destroy", "-f", pool])
        image.unlink()
