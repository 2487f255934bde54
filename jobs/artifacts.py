"""RQ job: write a finished job's report and logs to the object store."""
from __future__ import annotations

from appliance.artifacts.jobs import write_job_artifacts

from .context import current


def write_artifacts(job_id: str) -> None:
    ctx = current()
    write_job_artifacts(ctx, job_id, retain_seconds=ctx.settings.artifact_retention_seconds)
