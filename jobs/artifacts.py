"""RQ job: what a hit answered at admission leaves to a worker."""
from __future__ import annotations

from appliance.job_artifacts import write_job_artifacts
from appliance.orchestrator.warm_pool import refill

from .context import current


def after_admission(job_id: str) -> None:
    """The job's report and logs, then topping the warm pool up again: one queue entry instead
    of two, written after the client already has its DSN."""
    ctx = current()
    write_job_artifacts(ctx, job_id, retain_seconds=ctx.settings.artifact_retention_seconds)
    refill(ctx)
