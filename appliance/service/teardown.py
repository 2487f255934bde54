"""Removing an embedded appliance completely: clusters stopped, store unmounted, files gone."""
from __future__ import annotations

import shutil

from ..runtime.process import ProcessRuntime
from ..settings import Settings
from ..shell import Runner
from ..storage.image import is_btrfs_mount, unmount
from ..storage.select import image_path


def destroy_data_dir(settings: Settings, runner: Runner | None = None) -> None:
    runner = runner or Runner()
    runtime = ProcessRuntime(runner, pg_bin_dir=settings.pg_bin_dir, os_user=settings.instance_os_user)
    volumes_root = settings.store_path / "orgs"
    if volumes_root.is_dir():
        for volume in volumes_root.glob("*/volumes/*"):
            runtime.stop(volume, mode="immediate")
    if settings.store_path.exists() and is_btrfs_mount(settings.store_path) and image_path(settings).exists():
        unmount(settings.store_path, runner)
    shutil.rmtree(settings.data_dir, ignore_errors=True)
