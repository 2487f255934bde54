"""Failpoints: named places where a fault-injection test can hold a worker, so that it can kill
the worker at exactly that moment (between a snapshot and its row, say) instead of hoping a
timer lands there. Inert unless the ``failpoints`` setting names them; never set in production.

An enabled failpoint fires once per arming: the test creates ``<data_dir>/failpoints/<name>.armed``;
the first worker to reach the point removes it, writes its pid to ``<name>.<pid>`` and sleeps,
and the test kills it.
"""
from __future__ import annotations

import os
import time

from appliance.settings import Settings

HOLD_SECONDS = 120.0


def failpoint(settings: Settings, name: str) -> None:
    if name not in settings.failpoints:
        return
    directory = settings.data_dir / "failpoints"
    try:
        (directory / f"{name}.armed").unlink()  # exactly one worker wins the arming
    except FileNotFoundError:
        return
    (directory / f"{name}.{os.getpid()}").write_text(str(os.getpid()))
    time.sleep(HOLD_SECONDS)
