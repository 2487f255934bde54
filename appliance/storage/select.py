"""Choose the snapshot driver from settings and the host, and say why in plain words.

An explicit choice is honoured or refused, never silently downgraded; ``auto`` takes the
fastest option that works and warns the operator when that is the O(size) copy driver.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appliance.errors import CommandFailed
from appliance.settings import Settings
from appliance.shell import Runner
from appliance.storage.base import SnapshotDriver
from appliance.storage.btrfs import BtrfsDriver
from appliance.storage.copy import CopyDriver
from appliance.storage.image import StorageConfigError, can_mount, ensure_btrfs_image, filesystem_type
from appliance.storage.lvm import LvmDriver
from appliance.storage.store import SnapshotStore
from appliance.storage.zfs import ZfsDriver, dataset_mountpoint, pool_exists

__all__ = ["StorageConfigError", "StoreChoice", "choose_store", "open_store", "image_path", "store_root"]

# Filesystems on which ``cp --reflink=auto`` shares blocks instead of copying them.
_REFLINK_FILESYSTEMS = {"btrfs", "xfs"}


def image_path(settings: Settings) -> Path:
    return settings.data_dir / "store.btrfs.img"


@dataclass(frozen=True)
class StoreChoice:
    store: SnapshotStore
    reason: str  # one sentence an operator can read in `sqlrs-appliance doctor`
    warnings: list[str]


def open_store(settings: Settings, runner: Runner) -> tuple[SnapshotStore, list[str]]:
    """The store for these settings, plus warnings for the operator (full sentences)."""
    choice = choose_store(settings, runner)
    return choice.store, choice.warnings


def choose_store(settings: Settings, runner: Runner) -> StoreChoice:
    store, warnings = _choose(settings, runner)
    return StoreChoice(store, _reason(settings, store), warnings)


def _reason(settings: Settings, store: SnapshotStore) -> str:
    driver = store.driver.name
    if driver == "zfs":
        why = "storage_backend is zfs" if settings.storage_backend == "zfs" else "zfs_dataset exists"
        return f"zfs: {why}; dataset {settings.zfs_dataset} is mounted at {store.root}"
    if driver == "lvm":
        return f"lvm: storage_backend is lvm (thin pool {settings.lvm_thin_pool}, {settings.lvm_filesystem})"
    if settings.storage_backend != "auto":
        return f"{driver}: storage_backend is {settings.storage_backend}"
    if driver == "btrfs" and image_path(settings).exists():
        return f"btrfs: the store is the btrfs image {image_path(settings)}, loop-mounted by the appliance"
    if driver == "btrfs":
        return f"btrfs: the store {store.root} is on btrfs"
    return f"copy: no btrfs store or image is available for {store.root}"


def store_root(settings: Settings, runner: Runner) -> Path:
    """Where the store is, or will be, without making or mounting anything: the ZFS dataset's
    mountpoint with the zfs driver, else the store directory."""
    if _uses_zfs(settings, runner):
        return dataset_mountpoint(runner, _dataset(settings))
    return settings.store_path


def _uses_zfs(settings: Settings, runner: Runner) -> bool:
    backend = settings.storage_backend
    return backend == "zfs" or bool(backend == "auto" and settings.zfs_dataset
                                    and pool_exists(runner, settings.zfs_dataset))


def _choose(settings: Settings, runner: Runner) -> tuple[SnapshotStore, list[str]]:
    backend = settings.storage_backend
    if _uses_zfs(settings, runner):
        return _open_zfs(settings, runner), []
    if backend == "lvm":
        return _open_lvm(settings, runner), []
    store_dir = settings.store_path
    fs = filesystem_type(store_dir)

    if backend == "copy":
        hint = "or set storage_backend=auto"
        warnings = [] if fs in _REFLINK_FILESYSTEMS else [_copy_warning(store_dir, fs, hint)]
        return _open(store_dir, CopyDriver(runner)), warnings

    if fs == "btrfs":
        return _open(store_dir, BtrfsDriver(runner)), []

    if backend == "btrfs":
        if settings.btrfs_image == "off":
            raise StorageConfigError(
                f"storage_backend is btrfs but the store {store_dir} is on {fs} and btrfs_image "
                "is off; put the store on btrfs, set btrfs_image=auto, or choose another backend."
            )
        if not can_mount():
            raise StorageConfigError(
                f"storage_backend is btrfs but the store {store_dir} is on {fs} and the btrfs "
                "image cannot be mounted here (it needs root, mkfs.btrfs, mount and loop devices)."
            )
        _mount_image(settings, runner)
        return _open(store_dir, BtrfsDriver(runner)), []

    # auto
    if settings.btrfs_image == "auto" and can_mount():
        try:
            _mount_image(settings, runner)
        except (StorageConfigError, CommandFailed) as exc:
            failure = f"The btrfs image could not be mounted: {exc.message.rstrip('.')}."
            hint = "or fix the btrfs image problem above"
            return _open(store_dir, CopyDriver(runner)), [failure, _copy_warning(store_dir, fs, hint)]
        return _open(store_dir, BtrfsDriver(runner)), []
    if settings.btrfs_image == "off":
        hint = "or set btrfs_image=auto"
    else:
        hint = "or run as root with mkfs.btrfs and loop devices so the btrfs image can be used"
    warnings = [] if fs in _REFLINK_FILESYSTEMS else [_copy_warning(store_dir, fs, hint)]
    return _open(store_dir, CopyDriver(runner)), warnings


def _dataset(settings: Settings) -> str:
    if not settings.zfs_dataset:
        raise StorageConfigError("storage_backend is zfs but zfs_dataset is not set (e.g. tank/sqlrs).")
    return settings.zfs_dataset


def _open_zfs(settings: Settings, runner: Runner) -> SnapshotStore:
    dataset = _dataset(settings)
    if not pool_exists(runner, dataset):
        raise StorageConfigError(
            f"storage_backend is zfs but the dataset {dataset} does not exist or zfs does not answer "
            f"(check `zfs list {dataset}`; with zfs-fuse the zfs-fuse daemon must run).")
    root = dataset_mountpoint(runner, dataset)
    if settings.store_dir is not None and settings.store_dir != root:
        raise StorageConfigError(
            f"store_dir {settings.store_dir} is not where the dataset {dataset} is mounted ({root}); "
            "leave store_dir unset with the zfs driver.")
    return SnapshotStore(root, ZfsDriver(runner, dataset))


def _open_lvm(settings: Settings, runner: Runner) -> SnapshotStore:
    if not settings.lvm_thin_pool or settings.lvm_thin_pool.count("/") != 1:
        raise StorageConfigError("storage_backend is lvm but lvm_thin_pool is not set as vg/pool.")
    driver = LvmDriver(runner, settings.lvm_thin_pool, settings.lvm_volume_bytes, settings.lvm_filesystem)
    return _open(settings.store_path, driver)


def _mount_image(settings: Settings, runner: Runner) -> None:
    store_dir = settings.store_path
    ensure_btrfs_image(image_path(settings), store_dir, settings.btrfs_image_bytes, runner)
    mounted = filesystem_type(store_dir)
    if mounted != "btrfs":
        raise StorageConfigError(
            f"The btrfs image was mounted but the store {store_dir} reports {mounted}; "
            "check for another mount over it."
        )


def _copy_warning(store_dir: Path, fs: str, hint: str) -> str:
    return (
        f"The store {store_dir} is on {fs}: the copy driver clones in O(size); "
        f"put the store on btrfs/XFS {hint}."
    )


def _open(store_dir: Path, driver: SnapshotDriver) -> SnapshotStore:
    store_dir.mkdir(parents=True, exist_ok=True)
    return SnapshotStore(store_dir, driver)
