"""A real ZFS pool for tests: zfs-fuse here (pool v23), OpenZFS elsewhere, and the zfs driver on a
fresh dataset of it."""
from __future__ import annotations

import contextlib
import os
import secrets
import uuid
from pathlib import Path

import pytest

from appliance.errors import CommandFailed
from appliance.shell import Runner
from appliance.storage.copy import remove_tree

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


def zfs_driver_on_fresh_dataset(request, runner: Runner):
    """The zfs driver over the session pool, with a new per-test dataset as the store root.

    The driver maps every path under the pool's ``store`` mountpoint, so a sibling store next
    to the root (the stream tests' "other host") works too; both are destroyed afterwards."""
    from appliance.storage.zfs import ZfsDriver, dataset_exists, destroy_dataset

    pool_dataset, _ = request.getfixturevalue("zfs_pool")
    name = uuid.uuid4().hex[:12]
    runner(["zfs", "create", f"{pool_dataset}/{name}"])
    driver = ZfsDriver(runner, pool_dataset)

    def destroy_all() -> None:
        for dataset in (f"{pool_dataset}/{name}", f"{pool_dataset}/{name}-other"):
            if dataset_exists(runner, dataset):
                destroy_dataset(runner, dataset, recursive=True, with_clones=True)
        remove_tree(driver.root / f"{name}-other")

    request.addfinalizer(destroy_all)
    return driver, driver.root / name
