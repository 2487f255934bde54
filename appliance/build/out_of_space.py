"""A full store while building is the cache's problem, not the user's script's: say so."""
from __future__ import annotations

import errno

from appliance.errors import CacheFullUnreclaimable
from appliance.storage.store import SnapshotStore

_OUT_OF_SPACE_SIGNS = ("No space left on device", "Disk quota exceeded",
                       "HINT:  Check free disk space.")  # Postgres: "could not extend file …"


def out_of_space(exc: Exception) -> CacheFullUnreclaimable | None:
    """ENOSPC (or a tool saying so) while building becomes the cache's error."""
    text = getattr(exc, "stderr", "") or str(exc)
    if getattr(exc, "errno", None) == errno.ENOSPC or any(sign in text for sign in _OUT_OF_SPACE_SIGNS):
        return CacheFullUnreclaimable(
            "the store ran out of space while building a state; nothing was recorded",
            {"reasons": ["physical_free_exhausted"], "detail": first_error_line(text)})
    return None


def store_exhausted(store: SnapshotStore, message: str) -> CacheFullUnreclaimable | None:
    """Postgres may die of a full disk (a PANIC on a WAL write) and psql then only says
    the connection was lost: the free space on the store tells the real story."""
    total, free = store.disk_space()
    if free >= max(64 * 1024**2, total // 100):
        return None
    return CacheFullUnreclaimable(
        "the store ran out of space while building a state; nothing was recorded",
        {"reasons": ["physical_free_exhausted"], "store_free_bytes": free, "detail": first_error_line(message)})


def first_error_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or "FATAL" in line or "No space" in line]
    return (errors or lines or [""])[0][:500]
