"""Real filesystems for the storage tests: a tmp dir for the copy driver, a loop-mounted
btrfs image for the btrfs driver. Without the kernel features the btrfs tests skip loudly,
except in CI, where they fail."""
from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import uuid
from pathlib import Path

import pytest

from appliance.errors import CommandFailed
from appliance.shell import Runner
from appliance.storage.btrfs import BtrfsDriver, is_subvolume
from appliance.storage.copy import CopyDriver, remove_tree
from appliance.storage.image import filesystem_type, unmount
from appliance.storage.store import SnapshotStore

BTRFS_ROOT_BYTES = 512 * 1024**2
# Large enough for mkfs.btrfs' minimum with default (DUP) metadata.
SMALL_IMAGE_BYTES = 256 * 1024**2


def btrfs_unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"btrfs must be mountable in CI, but: {reason}")
    pytest.skip(f"!!! SKIPPING btrfs tests: cannot mount a btrfs image here ({reason}); "
                "they need root, loop devices and btrfs in the kernel !!!")


@pytest.fixture(scope="session")
def btrfs_root(tmp_path_factory, runner: Runner):
    """A fresh btrfs filesystem on a sparse image, mounted for the whole session."""
    if os.geteuid() != 0:
        btrfs_unavailable("not running as root")
    base = tmp_path_factory.mktemp("btrfs")
    image, mountpoint = base / "root.img", base / "mnt"
    mountpoint.mkdir()
    with open(image, "wb") as fh:
        fh.truncate(BTRFS_ROOT_BYTES)
    try:
        runner(["mkfs.btrfs", "-q", str(image)])
        runner(["mount", "-o", "loop", str(image), str(mountpoint)])
    except (CommandFailed, FileNotFoundError) as exc:
        btrfs_unavailable(str(exc))
    yield mountpoint
    unmount(mountpoint, runner)
    image.unlink()


@pytest.fixture
def btrfs_dir(btrfs_root: Path, runner: Runner):
    """A private directory on the session's btrfs; its subvolumes are deleted afterwards."""
    directory = btrfs_root / uuid.uuid4().hex
    directory.mkdir()
    yield directory
    destroy_everything(directory, BtrfsDriver(runner))


def destroy_everything(directory: Path, driver: BtrfsDriver) -> None:
    for current, dirs, _ in os.walk(directory, topdown=True):
        for name in list(dirs):
            path = Path(current) / name
            if is_subvolume(path):
                driver.destroy(path)
                dirs.remove(name)
    remove_tree(directory)


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
def database_owner() -> tuple[int, int]:
    """A non-root uid/gid like the one Postgres runs as."""
    try:
        entry = pwd.getpwnam("postgres")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 65534, 65534


# -- zfs (zfs-fuse here, OpenZFS elsewhere) ---------------------------------------------------
ZFS_POOL_BYTES = 512 * 1024**2


def zfs_unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"zfs must work in CI, but: {reason}")
    pytest.skip(f"!!! SKIPPING zfs tests: no working zfs here ({reason}); they need the zfs tools "
                "and a running zfs daemon (zfs-fuse: see scripts/install-deps) !!!")


@contextlib.contextmanager
def file_backed_pool(runner: Runner, directory: Path):
    """A new pool on a sparse file, with a dataset ``<pool>/store``; destroyed afterwards.

    The pool name is unique per run, so parallel or crashed runs never collide."""
    try:
        runner(["zpool", "list", "-H", "-o", "name"])
    except (CommandFailed, FileNotFoundError) as exc:
        zfs_unavailable(str(exc))
    pool = f"sqlrstest{os.getpid()}{secrets.token_hex(3)}"
    image, mountpoint = directory / f"{pool}.img", directory / pool
    with open(image, "wb") as fh:
        fh.truncate(ZFS_POOL_BYTES)
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
