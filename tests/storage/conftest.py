"""Real filesystems for the storage tests: a tmp dir for the copy driver, a loop-mounted
btrfs image for the btrfs driver. Without the kernel features the btrfs tests skip loudly,
except in CI, where they fail."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from appliance.shell import Runner
from appliance.storage.btrfs import BtrfsDriver
from appliance.storage.copy import CopyDriver, remove_tree
from appliance.storage.image import filesystem_type, unmount
from appliance.storage.store import SnapshotStore
from tests.support.zfs import file_backed_pool

# Large enough for mkfs.btrfs' minimum with default (DUP) metadata.
SMALL_IMAGE_BYTES = 256 * 1024**2


@pytest.fixture
def non_btrfs_dir(tmp_path: Path, runner: Runner):
    """A directory that is certainly not on btrfs (tmpfs if the tmp dir happens to be btrfs)."""
    if filesystem_type(tmp_path) != "btrfs":
        yield tmp_path
        return
    mountpoint = tmp_path / "tmpfs"
    mountpoint.mkdir()
    runner(["mount", "-t", "tmpfs", "tmpfs", str(mountpoint)])
    yield mountpoint
    unmount(mountpoint, runner)


@pytest.fixture(params=["copy", "btrfs", "zfs"])
def driver_and_root(request, tmp_path: Path, runner: Runner):
    """Every driver on the filesystem it is meant for, with an empty store root."""
    if request.param == "copy":
        root = tmp_path / "store"
        root.mkdir()
        return CopyDriver(runner), root
    if request.param == "zfs":
        return zfs_driver_on_fresh_dataset(request, runner)
    root = request.getfixturevalue("btrfs_dir") / "store"
    root.mkdir()
    return BtrfsDriver(runner), root


@pytest.fixture
def store(driver_and_root) -> SnapshotStore:
    driver, root = driver_and_root
    return SnapshotStore(root, driver)


@pytest.fixture(scope="session")
def zfs_pool(tmp_path_factory, runner: Runner):
    """(dataset, mountpoint) of a fresh file-backed pool's ``store`` dataset, for the session."""
    with file_backed_pool(runner, tmp_path_factory.mktemp("zfs")) as dataset_and_mountpoint:
        yield dataset_and_mountpoint


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
