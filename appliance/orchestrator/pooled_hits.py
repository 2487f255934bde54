"""The fast path: a prepare whose every step is cached here, answered from the warm pool at
admission, without the queue.

Through the queue, a pooled hit pays for a worker hop, per-task bookkeeping and the client's
polling around a ~20 ms bind. When admission already knows the whole chain is on this host
and a pooled clone of the final state is waiting, it takes the clone before it writes anything
(:func:`start_bind`: its password is set in the background meanwhile) and records the job as
done in the admission's own transaction (:meth:`AdmissionBind.record`): one transaction, and
no row written twice. The job's tasks, events and counters read exactly as a queued hit's
would; the report is written by a worker, queued after the answer
(:func:`queue_after_admission`). Anything else (a miss, an empty pool, a password that cannot
be set) leaves the job to the queue as usual.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from appliance import instances
from appliance.context import AppContext
from appliance.control import audit, counters, quotas
from appliance.control.models import PrepareJob, State, Task, utcnow
from appliance.orchestrator import warm_pool
from appliance.orchestrator.events import event
from appliance.orchestrator.queue import enqueue_after_admission

log = logging.getLogger(__name__)


class BindFailed(Exception):
    """The pooled clone could not be handed out (its password could not be set)."""


@dataclass
class AdmissionBind:
    ctx: AppContext
    pending: instances.PendingBind
    state_ids: list[str]

    @property
    def instance(self):
        return self.pending.instance

    def job_fields(self) -> dict[str, Any]:
        """The job row of a prepare finished at admission."""
        now = utcnow()
        return {"status": "succeeded", "started_at": now, "finished_at": now, "heartbeat_at": now,
                "worker": f"{self.ctx.host}:admission", "result_state_id": self.state_ids[-1],
                "result_instance_id": self.instance.instance_id}

    def record(self, job: PrepareJob, task_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """In the admission's transaction: the instance handed to ``job``, its task rows marked
        done (before they are inserted), the state's use, the audit row and the counters; waits
        for the password last. Returns the events that end the job."""
        self.pending.record(job_id=job.job_id, ttl_seconds=job.instance_ttl_seconds, name=job.instance_name)
        State.update(last_used_at=utcnow(), use_count=State.use_count + 1).where(
            (State.org == job.org) & State.state_id.in_(self.state_ids) & (State.host == self.ctx.host)).execute()
        audit.instance_bound(job, self.instance, from_pool=True)
        try:
            bind_seconds = self.pending.wait()
        except Exception as exc:
            raise BindFailed(str(exc)) from exc
        now = utcnow()
        with counters.batched():
            for row in task_rows:
                if row["status"] == "queued":
                    row.update(status="succeeded", started_at=now, finished_at=now,
                               duration_seconds=round(bind_seconds, 4) if row["type"] == "prepare_instance" else 0.0)
                    counters.step_finished(Task(**row), plan_only=False)
            counters.job_finished("succeeded")
        result = {"instance_id": self.instance.instance_id, "state_id": self.state_ids[-1],
                  "image_id": job.resolved_image_id}
        return [event("log", task_id="prepare-instance", message=warm_pool.BOUND_MESSAGE),
                event("status", status="succeeded"), event("result", result=result)]

    def abandon(self) -> None:
        """The job goes to the queue instead: the clone is not handed out, and is removed."""
        self.pending.abandon()
        try:
            instances.destroy_instance(self.ctx, self.instance)
        except Exception as exc:  # the reconciler removes what is left
            log.warning("pooled instance %s could not be removed now: %s", self.instance.instance_id, exc)


def start_bind(ctx: AppContext, org: str, state_ids: list[str], *, job_id: str,
               limits: quotas.Limits | None = None) -> AdmissionBind | None:
    """Take a pooled clone of the chain's last state for ``job_id`` and start setting its
    password; None (nothing changed) when the pool is off or empty, or quotas forbid a bind."""
    if not state_ids or not warm_pool.enabled(ctx):
        return None
    try:
        quotas.check_bind(ctx.settings, org, limits)
        instance = warm_pool.take(ctx, org, state_ids[-1], job_id=job_id)
    except Exception as exc:  # the queue path still works (and says what a quota forbids)
        log.warning("job %s: no bind from the warm pool at admission (%s); queueing it", job_id, exc)
        return None
    if instance is None:
        return None
    return AdmissionBind(ctx, instances.PendingBind(ctx, instance), state_ids)


def queue_after_admission(ctx: AppContext, job_id: str) -> None:
    """The job's artifacts and a pool refill, for the host's workers; the API calls this once
    the answer is on its way (an RQ enqueue is a few Redis round trips)."""
    try:
        enqueue_after_admission(ctx.redis, ctx.host, job_id)
    except Exception as exc:  # Redis away: the reconciler refills; the artifacts are lost, not the job
        log.warning("job %s: could not enqueue its artifacts and the pool refill: %s", job_id, exc)
