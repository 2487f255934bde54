"""The fast path: a prepare whose every step is cached here, answered from the warm pool at
admission, without the queue.

Through the queue, a pooled hit pays for a worker hop, per-task bookkeeping and the client's
polling around a ~20 ms bind. When admission already knows the whole chain is on this host
and a pooled clone of the final state is waiting, it binds it in the request and records the
job as done in one transaction; the job's events and report read exactly as a queued hit's
would (the report is written by a worker, queued after the answer: :func:`queue_after_admission`).
Anything else (a miss, an empty pool, a bind that fails) leaves the job queued as usual.
"""
from __future__ import annotations

import logging
import time

from appliance.context import AppContext
from appliance.control import audit, counters, quotas
from appliance.control.models import PrepareJob, State, Task, utcnow
from appliance.orchestrator import warm_pool
from appliance.orchestrator.events import append_events, event
from appliance.orchestrator.queue import enqueue_after_admission

log = logging.getLogger(__name__)


def bind_if_pooled(ctx: AppContext, job: PrepareJob, state_ids: list[str],
                   limits: quotas.Limits | None = None) -> bool:
    """Finish ``job`` now from the warm pool; False (nothing changed) when that is not possible."""
    if not state_ids or not warm_pool.enabled(ctx):
        return False
    quotas.check_bind(ctx.settings, job.org, limits)
    bind_started = time.monotonic()

    def record_success(instance) -> None:  # in the bind's transaction, while Postgres sets the password
        now = utcnow()
        result = {"instance_id": instance.instance_id, "state_id": state_ids[-1], "image_id": job.resolved_image_id}
        PrepareJob.update(status="succeeded", started_at=now, finished_at=now, heartbeat_at=now,
                          worker=f"{ctx.host}:admission", result_state_id=state_ids[-1],
                          result_instance_id=instance.instance_id).where(PrepareJob.job_id == job.job_id).execute()
        Task.update(status="succeeded", started_at=now, finished_at=now, duration_seconds=0.0).where(
            (Task.job == job) & (Task.status == "queued")).execute()
        Task.update(duration_seconds=round(time.monotonic() - bind_started, 4)).where(
            (Task.job == job) & (Task.type == "prepare_instance")).execute()
        for task in Task.select().where(Task.job == job):
            counters.step_finished(task, plan_only=False)
        counters.job_finished("succeeded")
        State.update(last_used_at=now, use_count=State.use_count + 1).where(
            (State.org == job.org) & State.state_id.in_(state_ids) & (State.host == ctx.host)).execute()
        append_events(job.job_id, [event("log", task_id="prepare-instance", message=warm_pool.BOUND_MESSAGE),
                                   event("status", status="succeeded"), event("result", result=result)])
        audit.instance_bound(job, instance, from_pool=True)

    instance = warm_pool.claim(ctx, job.org, state_ids[-1], job_id=job.job_id, ttl_seconds=job.instance_ttl_seconds,
                               name=job.instance_name, alongside=record_success)
    if instance is None:
        return False
    job.status, job.result_state_id, job.result_instance_id = "succeeded", state_ids[-1], instance.instance_id
    return True


def queue_after_admission(ctx: AppContext, job_id: str) -> None:
    """The job's artifacts and a pool refill, for the host's workers; the API calls this once
    the answer is on its way (an RQ enqueue is a few Redis round trips)."""
    try:
        enqueue_after_admission(ctx.redis, ctx.host, job_id)
    except Exception as exc:  # Redis away: the reconciler refills; the artifacts are lost, not the job
        log.warning("job %s: could not enqueue its artifacts and the pool refill: %s", job_id, exc)
