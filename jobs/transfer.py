"""RQ job: run one export or import (a ``Transfer`` row) on this host."""
from __future__ import annotations

from appliance.transfer.jobs import run_transfer as run

from .context import current


def run_transfer(transfer_id: str) -> str | None:
    outcome = run(current(), transfer_id)
    return outcome.status if outcome is not None else None
