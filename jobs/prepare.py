"""RQ job: run one prepare job to its end (succeeded, failed or cancelled)."""
from __future__ import annotations

from appliance.build.job import run_next_job

from .context import current


def run_prepare_job(job_id: str) -> None:
    """``job_id`` names the job whose arrival put this token on the queue; the job that runs
    is the one the scheduler picks now (fair share between orgs, priority within one)."""
    run_next_job(current())
