"""The btrfs image file: formatted once, mounted over the store, never over existing data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.shell import Runner
from appliance.storage.image import (
    StorageConfigError,
    ensure_btrfs_image,
    filesystem_type,
    is_btrfs_mount,
    unmount,
)
from tests.support.btrfs import SMALL_IMAGE_BYTES


@pytest.fixture
def mounts(runner: Runner):
    """Mount points a test may create; whatever is still mounted is unmounted afterwards."""
    created: list[Path] = []
    yield created
    for mountpoint in created:
        unmount(mountpoint, runner)


def test_filesystem_type_names_a_btrfs_mount(btrfs_root: Path):
    assert filesystem_type(btrfs_root) == "btrfs"


def test_filesystem_type_of_a_missing_path_is_that_of_its_nearest_parent(btrfs_root: Path):
    assert filesystem_type(btrfs_root / "not" / "yet") == "btrfs"


def test_ensure_does_nothing_when_btrfs_is_already_mounted(btrfs_root: Path, tmp_path: Path,
                                                           runner: Runner):
    image = tmp_path / "never.img"
    ensure_btrfs_image(image, btrfs_root, SMALL_IMAGE_BYTES, runner)
    assert not image.exists()


def test_ensure_creates_a_sparse_image_and_mounts_btrfs(btrfs_root, non_btrfs_dir: Path,
                                                        runner: Runner, mounts):
    image, mountpoint = non_btrfs_dir / "store.img", non_btrfs_dir / "store"
    mounts.append(mountpoint)
    ensure_btrfs_image(image, mountpoint, SMALL_IMAGE_BYTES, runner)
    assert is_btrfs_mount(mountpoint)
    assert image.stat().st_size == SMALL_IMAGE_BYTES
    assert image.stat().st_blocks * 512 < SMALL_IMAGE_BYTES


def test_an_image_keeps_its_data_when_mounted_again(btrfs_root, non_btrfs_dir: Path,
                                                    runner: Runner, mounts):
    image, mountpoint = non_btrfs_dir / "store.img", non_btrfs_dir / "store"
    mounts.append(mountpoint)
    ensure_btrfs_image(image, mountpoint, SMALL_IMAGE_BYTES, runner)
    (mountpoint / "kept").write_text("still here")
    unmount(mountpoint, runner)
    ensure_btrfs_image(image, mountpoint, SMALL_IMAGE_BYTES, runner)
    assert (mountpoint / "kept").read_text() == "still here"


def test_the_image_is_not_mounted_over_a_directory_that_holds_data(btrfs_root, non_btrfs_dir: Path,
                                                                    runner: Runner, mounts):
    image, mountpoint = non_btrfs_dir / "store.img", non_btrfs_dir / "store"
    mounts.append(mountpoint)
    mountpoint.mkdir()
    (mountpoint / "existing-state").mkdir()
    with pytest.raises(StorageConfigError):
        ensure_btrfs_image(image, mountpoint, SMALL_IMAGE_BYTES, runner)
    assert not os.path.ismount(mountpoint)
    assert not image.exists()


def test_unmounting_what_is_not_mounted_is_not_an_error(tmp_path: Path, runner: Runner):
    unmount(tmp_path, runner)
    unmount(tmp_path / "missing", runner)
