"""Jobs in given states without a worker: submitted for real, then ended by the reconciler."""
from __future__ import annotations

import datetime as dt

from appliance.control.models import PrepareJob, utcnow
from appliance.orchestrator.reconciler import reconcile
from appliance.orchestrator.submit import submit_prepare

REQUEST = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "create table t (i int)"]}


def lost_job(ctx) -> PrepareJob:
    """A job whose worker went silent, failed by the reconciler (which counts the error)."""
    job = submit_prepare(ctx, "default", dict(REQUEST))
    stale = utcnow() - dt.timedelta(seconds=ctx.settings.job_lost_after_seconds + 5)
    PrepareJob.update(status="running", heartbeat_at=stale, worker="host:1").where(
        PrepareJob.job_id == job.job_id).execute()
    assert job.job_id in reconcile(ctx).lost_jobs
    return PrepareJob.get_by_id(job.job_id)


def age(job_id: str, days: float) -> None:
    """Pretend the job ended ``days`` ago."""
    PrepareJob.update(finished_at=utcnow() - dt.timedelta(days=days)).where(PrepareJob.job_id == job_id).execute()


def instance_of(job_id: str, status: str, n: int = 1):
    """An instance row of the job (the row only: retention reads rows, never disks)."""
    from appliance.control.models import Instance
    return Instance.create(instance_id=f"{n:032x}", org="default", state_id="s" * 64, image_id="postgres:15",
                           job_id=job_id, volume_id=f"{n:032x}", status=status, host="127.0.0.1", port=7001,
                           password="x", expires_at=utcnow() + dt.timedelta(hours=1))
