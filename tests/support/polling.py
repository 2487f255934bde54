"""Waiting for something a real service does in its own time, with a bound and a message."""
from __future__ import annotations

import time


def wait_until(predicate, timeout: float, what: str):
    """The first truthy value of ``predicate()``, polled every 0.1 s for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
