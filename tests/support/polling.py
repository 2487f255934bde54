"""Waiting for something a real service does in its own time, with a bound and a message.

The suite's one polling loop: ``eventually`` answers whether it happened in time (for an
``assert``), ``wait_until`` fails the test with ``what`` when it did not."""
from __future__ import annotations

import time


def eventually(predicate, timeout: float, interval: float = 0.1):
    """The first truthy value of ``predicate()``, polled every ``interval`` seconds for at most
    ``timeout`` seconds; ``None`` when none came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    return None


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    """The first truthy value of ``predicate()``, polled every ``interval`` seconds for at most ``timeout`` seconds."""
    if value := eventually(predicate, timeout, interval):
        return value
    raise AssertionError(f"timed out waiting for {what}")
