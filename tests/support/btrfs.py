"""btrfs for tests: skipping loudly where it cannot be mounted (failing in CI), and removing a
directory full of subvolumes."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.storage.btrfs import BtrfsDriver, is_subvolume
from appliance.storage.copy import remove_tree

# Large enough for mkfs.btrfs' minimum with default (DUP) metadata.
SMALL_IMAGE_BYTES = 256 * 1024**2


def btrfs_unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"btrfs must be mountable in CI, but: {reason}")
    pytest.skip(f"!!! SKIPPING btrfs tests: cannot mount a btrfs image here ({reason}); "
                "they need root, loop devices and btrfs in the kernel !!!")


def destroy_everything(directory: Path, driver: BtrfsDriver) -> None:
    for current, dirs, _ in os.walk(directory, topdown=True):
        for name in list(dirs):
            path = Path(current) / name
            if is_subvolume(path):
                driver.destroy(path)
                dirs.remove(name)
    remove_tree(directory)
