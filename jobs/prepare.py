"""RQ job: run one prepare job to its end (succeeded, failed or cancelled)."""
from __future__ import annotations

from appliance.engine.executor import execute_job

from .context import current


def run_prepare_job(job_id: str) -> None:
    execute_job(current(), job_id)
