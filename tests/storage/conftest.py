"""Real filesystems for the storage tests: a tmp dir for the copy driver, a loop-mounted
btrfs image for the btrfs driver. Without the kernel features the btrfs tests skip loudly,
except in CI, where they fail."""
from __future__ import annotations

from pathlib import Path

import pytest

from appliance.shell import Runner
from appliance.storage.btrfs import BtrfsDriver
from appliance.storage.copy import CopyDriver
from appliance.storage.image import filesystem_type, unmount
from appliance.storage.store import SnapshotStore
from tests.support.zfs import file_backed_pool, zfs_driver_on_fresh_dataset


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
