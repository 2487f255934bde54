"""Driver selection: explicit choices are honoured or refused, auto takes the best that works."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.settings import Settings
from appliance.shell import Runner
from appliance.storage.image import filesystem_type, unmount
from appliance.storage.select import StorageConfigError, image_path, open_store
from tests.support.btrfs import SMALL_IMAGE_BYTES


@pytest.fixture
def make_settings(monkeypatch, runner: Runner):
    """Settings from explicit values only; any store mounted by a test is unmounted after it."""
    for name in list(os.environ):
        if name.startswith("SQLRS_"):
            monkeypatch.delenv(name)
    made: list[Settings] = []

    def make(**values) -> Settings:
        settings = Settings(btrfs_image_bytes=SMALL_IMAGE_BYTES, **values)
        made.append(settings)
        return settings

    yield make
    for settings in made:
        unmount(settings.store_path, runner)


def test_auto_on_a_btrfs_store_chooses_btrfs(btrfs_dir: Path, tmp_path: Path, runner, make_settings):
    settings = make_settings(data_dir=tmp_path, store_dir=btrfs_dir / "store", btrfs_image="off")
    store, warnings = open_store(settings, runner)
    assert (store.driver.name, warnings) == ("btrfs", [])


def test_auto_off_btrfs_with_the_image_off_chooses_copy_and_warns(non_btrfs_dir: Path, runner,
                                                                  make_settings):
    settings = make_settings(data_dir=non_btrfs_dir, btrfs_image="off")
    store, warnings = open_store(settings, runner)
    assert store.driver.name == "copy"
    assert len(warnings) == 1 and "O(size)" in warnings[0] and str(settings.store_path) in warnings[0]


def test_auto_off_btrfs_with_the_image_allowed_mounts_it_and_chooses_btrfs(
        btrfs_root, non_btrfs_dir: Path, runner, make_settings):
    settings = make_settings(data_dir=non_btrfs_dir, btrfs_image="auto")
    store, warnings = open_store(settings, runner)
    assert (store.driver.name, warnings) == ("btrfs", [])
    assert filesystem_type(settings.store_path) == "btrfs"
    assert image_path(settings).is_file()


def test_opening_again_reuses_the_mounted_image(btrfs_root, non_btrfs_dir: Path, runner,
                                                make_settings):
    settings = make_settings(data_dir=non_btrfs_dir, btrfs_image="auto")
    first, _ = open_store(settings, runner)
    first.create_volume("acme", "v1")
    second, warnings = open_store(settings, runner)
    assert (second.driver.name, warnings, second.list_volumes()) == ("btrfs", [], [("acme", "v1")])


def test_auto_does_not_hide_an_existing_store_behind_the_image(btrfs_root, non_btrfs_dir: Path,
                                                               runner, make_settings):
    settings = make_settings(data_dir=non_btrfs_dir, btrfs_image="auto")
    (settings.store_path / "orgs").mkdir(parents=True)
    store, warnings = open_store(settings, runner)
    assert store.driver.name == "copy"
    assert len(warnings) == 2 and not os.path.ismount(settings.store_path)


def test_explicit_btrfs_off_btrfs_with_the_image_off_is_an_error(non_btrfs_dir: Path, runner,
                                                                 make_settings):
    settings = make_settings(data_dir=non_btrfs_dir, storage_backend="btrfs", btrfs_image="off")
    with pytest.raises(StorageConfigError):
        open_store(settings, runner)


def test_explicit_btrfs_off_btrfs_with_the_image_allowed_mounts_it(btrfs_root, non_btrfs_dir: Path,
                                                                   runner, make_settings):
    settings = make_settings(data_dir=non_btrfs_dir, storage_backend="btrfs", btrfs_image="auto")
    store, _ = open_store(settings, runner)
    assert store.driver.name == "btrfs" and filesystem_type(settings.store_path) == "btrfs"


def test_explicit_copy_is_honoured_on_btrfs(btrfs_dir: Path, tmp_path: Path, runner, make_settings):
    settings = make_settings(data_dir=tmp_path, store_dir=btrfs_dir / "store", storage_backend="copy")
    store, warnings = open_store(settings, runner)
    assert (store.driver.name, warnings) == ("copy", [])


def test_auto_chooses_zfs_when_the_configured_dataset_exists_and_says_why(zfs_pool, tmp_path, runner, make_settings):
    from appliance.storage.select import choose_store
    dataset, mountpoint = zfs_pool
    choice = choose_store(make_settings(data_dir=tmp_path, zfs_dataset=dataset), runner)
    assert choice.store.driver.name == "zfs" and choice.store.root == mountpoint
    assert choice.reason == f"zfs: zfs_dataset exists; dataset {dataset} is mounted at {mountpoint}"


def test_auto_skips_a_configured_dataset_that_does_not_exist(tmp_path, runner, make_settings):
    settings = make_settings(data_dir=tmp_path, zfs_dataset="nosuchpool/sqlrs", btrfs_image="off")
    store, _ = open_store(settings, runner)
    assert store.driver.name != "zfs"


def test_explicit_zfs_without_a_dataset_is_refused(tmp_path, runner, make_settings):
    with pytest.raises(StorageConfigError, match="zfs_dataset is not set"):
        open_store(make_settings(data_dir=tmp_path, storage_backend="zfs"), runner)


def test_explicit_zfs_with_a_missing_dataset_is_refused(tmp_path, runner, make_settings):
    with pytest.raises(StorageConfigError, match="nosuchpool/sqlrs does not exist"):
        open_store(make_settings(data_dir=tmp_path, storage_backend="zfs", zfs_dataset="nosuchpool/sqlrs"), runner)


def test_explicit_lvm_without_a_thin_pool_is_refused(tmp_path, runner, make_settings):
    with pytest.raises(StorageConfigError, match="lvm_thin_pool"):
        open_store(make_settings(data_dir=tmp_path, storage_backend="lvm"), runner)
