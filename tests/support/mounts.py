"""A directory made read-only for real (a read-only bind mount over itself): even root cannot
write there, as on a read-only or failed filesystem."""
from __future__ import annotations

import contextlib
from pathlib import Path

from appliance.shell import Runner


@contextlib.contextmanager
def read_only(directory: Path, runner: Runner | None = None):
    runner = runner or Runner()
    directory.mkdir(parents=True, exist_ok=True)
    runner(["mount", "--bind", str(directory), str(directory)])
    try:
        runner(["mount", "-o", "remount,ro,bind", str(directory)])
        yield directory
    finally:
        runner(["umount", str(directory)])
