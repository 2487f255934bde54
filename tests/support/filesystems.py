"""Small real filesystems for tests that need a disk to run out of space."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.errors import CommandFailed
from appliance.shell import Runner
from appliance.storage.image import unmount


@contextlib.contextmanager
def small_tmpfs(mountpoint: Path, runner: Runner, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``mountpoint`` (made if missing, mode 0755); unmounted afterwards."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    try:
        runner(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mountpoint)])
    except CommandFailed as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"!!! SKIPPING: cannot mount a tmpfs here ({exc.message}) !!!")
    try:
        yield mountpoint
    finally:
        unmount(mountpoint, runner)
