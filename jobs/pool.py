"""RQ job: top up the warm pool of every hot state."""
from __future__ import annotations

from appliance.orchestrator.warm_pool import refill

from .context import current


def refill_warm_pool() -> int:
    return refill(current())
