"""Removing an embedded appliance completely: clusters stopped, store emptied, files gone."""
from __future__ import annotations

import logging
import shutil

from ..runtime.select import open_runtime
from ..settings import Settings
from ..shell import Runner
from ..storage.image import is_btrfs_mount, unmount
from ..storage.select import choose_store, image_path

log = logging.getLogger(__name__)


def destroy_data_dir(settings: Settings, runner: Runner | None = None) -> None:
    runner = runner or Runner()
    runtime = open_runtime(settings, runner)
    store = choose_store(settings, runner).store
    for volume in sorted((store.root / "orgs").glob("*/volumes/*")):
        runtime.stop(volume, mode="immediate")
    if store.driver.name == "zfs":
        # The pool is the operator's; what the appliance made lives under <dataset>/orgs.
        from ..storage.zfs import dataset_exists, destroy_dataset
        if dataset_exists(runner, f"{settings.zfs_dataset}/orgs"):
            destroy_dataset(runner, f"{settings.zfs_dataset}/orgs", recursive=True, with_clones=True)
    if settings.store_path.exists() and is_btrfs_mount(settings.store_path) and image_path(settings).exists():
        unmount(settings.store_path, runner)
    shutil.rmtree(settings.data_dir, ignore_errors=True)
