"""Admission of a prepare job: validate, plan, record, enqueue.

Everything a client can get wrong (kind, image, flags, files, includes, TTL) is checked
here, synchronously, before anything is written, so bad input answers 4xx and changes
nothing. The plan (steps, task hashes, state ids) is fixed at admission and never changes
when the job is retried.
"""
from __future__ import annotations

import functools
import json
import logging
import secrets
from dataclasses import replace
from typing import Any

from appliance.context import AppContext
from appliance.control import counters, quotas
from appliance.control.db import write_transaction
from appliance.control.models import PrepareJob, Task, utcnow
from appliance.control.sharing import visible_copies
from appliance.control.tenancy import check_may_serve
from appliance.errors import InvalidArgument
from appliance.orchestrator.events import append_event, append_events, event
from appliance.orchestrator.kinds import PlannedPrepare, PrepareKind, Target, kind_of
from appliance.orchestrator.placement import Placement, place
from appliance.orchestrator.pooled_hits import AdmissionBind, BindFailed, start_bind
from appliance.orchestrator.queue import enqueue_token
from appliance.orchestrator.tasks import admission_rows, insert_tasks, step_rows
from appliance.planning.hashing import digest
from appliance.planning.steps import PlannedStep
from appliance.sources import local_source_root, resolve_source

log = logging.getLogger(__name__)


def plan_prepare(ctx: AppContext, org: str, request: dict[str, Any]) -> PlannedPrepare:
    """Validate and plan a request; raises a 4xx error for anything a client got wrong."""
    check_may_serve(ctx.isolation, org)
    kind = kind_of(request.get("prepare_kind"))
    resolved_image = ctx.runtime.resolve_image(request["image_id"])
    source = resolve_source(ctx, org, request.get("source"))
    work_dir = (request.get("source") or {}).get("work_dir") or "."
    root = local_source_root(ctx, org, None) if source is None else source.root
    return kind.plan(ctx, request, Target(org, resolved_image, source, root, work_dir))


def submit_prepare(ctx: AppContext, org: str, request: dict[str, Any], *, submitted_by: str | None = None) -> PrepareJob:
    ttl = _instance_ttl(ctx, request.get("instance") or {})
    planned = plan_prepare(ctx, org, request)
    limits = None if request.get("plan_only") else quotas.check_admission(ctx.settings, org, ttl_seconds=ttl)
    plan_only = bool(request.get("plan_only"))
    signature = digest(("signature", planned.signature), ("plan_only", str(plan_only)))

    job_id = secrets.token_hex(16)
    kind = kind_of(planned.kind)
    planned = replace(planned, steps=kind.steps_for_job(planned, job_id))
    planned_here = planned.steps is not None
    # A plan-only job is finished here, unless a worker has yet to plan it.
    placement = None if plan_only and planned_here else place(ctx, org, planned.state_ids)
    record = functools.partial(_record_job, ctx, org, request, planned, kind, job_id=job_id, signature=signature,
                               plan_only=plan_only, placement=placement, ttl=ttl, submitted_by=submitted_by)
    bind = None
    if (placement is not None and placement.host_id == ctx.host and planned.state_ids
            and placement.cached_steps == len(planned.state_ids)):
        bind = start_bind(ctx, org, planned.state_ids, job_id=job_id, limits=limits)
    if bind is not None:
        try:
            return record(bind=bind)
        except BaseException as exc:  # nothing was recorded: the clone is not handed out
            bind.abandon()
            if not isinstance(exc, BindFailed):
                raise
            log.warning("job %s: binding from the warm pool at admission failed (%s); queueing it", job_id, exc)
    job = record(bind=None)
    if placement is not None:
        try:
            enqueue_token(ctx.redis, placement.host_id, job_id)
        except Exception as exc:  # Redis down: the job is safe in the DB; the reconciler enqueues it
            log.warning("could not enqueue job %s now (%s); the reconciler will", job_id, exc)
    return job


def _record_job(ctx: AppContext, org: str, request: dict[str, Any], planned: PlannedPrepare, kind: PrepareKind, *,
                job_id: str, signature: str, plan_only: bool, placement: Placement | None, ttl: int,
                submitted_by: str | None, bind: AdmissionBind | None) -> PrepareJob:
    """The job, its tasks and its first events, in one transaction; a job answered from the
    warm pool (``bind``) is recorded finished."""
    host = placement.host_id if placement else None
    with write_transaction(ctx.db):
        job = PrepareJob.create(**{
            "job_id": job_id, "org": org, "status": "queued", "prepare_kind": planned.kind,
            "image_id": request["image_id"], "resolved_image_id": planned.resolved_image, "signature": signature,
            "plan_only": plan_only, "request_json": json.dumps(request, sort_keys=True),
            "source_id": planned.source_id, "work_dir": planned.work_dir, "instance_ttl_seconds": ttl,
            "instance_name": (request.get("instance") or {}).get("name"),
            "priority": int(request.get("priority") or 0), "submitted_by": submitted_by, "host_id": host,
            **(bind.job_fields() if bind else {})})
        rows = _task_rows(job, org, kind, planned.steps, host)
        events = [event("status", status="queued")] + (
            [event("log", task_id="plan", message=f"placed on {placement.reason}")] if placement else [])
        if bind is not None:
            events += bind.record(job, rows)
        insert_tasks(rows)
        append_events(job_id, events)
        if plan_only and planned.steps is not None:
            _finish_plan_only(job)
    return job


def _existing(org: str, state_ids: list[str], host: str | None) -> set[str]:
    """What ``cached`` says: what the chosen host holds; for a plan-only job, what any host holds."""
    return {state_id for copy_host, state_id in visible_copies(org, state_ids) if host in (None, copy_host)}


def _task_rows(job: PrepareJob, org: str, kind: PrepareKind, steps: list[PlannedStep] | None,
               host: str | None) -> list[dict[str, Any]]:
    rows = admission_rows(job, kind.plan_summary(steps))
    if steps is None:
        return rows + kind.worker_planning_rows(job, first_position=len(rows))
    existing = _existing(org, [step.state_id for step in steps], host)
    return rows + step_rows(job, steps, first_position=len(rows), exists=existing.__contains__)


def _finish_plan_only(job: PrepareJob) -> None:
    now = utcnow()
    Task.update(status="succeeded", started_at=now, finished_at=now).where(
        (Task.job == job) & (Task.status == "queued")).execute()
    job.status, job.started_at, job.finished_at = "succeeded", now, now
    job.save()
    counters.job_finished("succeeded")
    append_event(job.job_id, "status", status="succeeded")


def _instance_ttl(ctx: AppContext, instance: dict[str, Any]) -> int:
    ttl = instance.get("ttl_seconds") or ctx.settings.instance_ttl_seconds
    if ttl > ctx.settings.instance_max_ttl_seconds:
        raise InvalidArgument(
            f"ttl_seconds {ttl} exceeds the maximum of {ctx.settings.instance_max_ttl_seconds}",
            {"max_ttl_seconds": ctx.settings.instance_max_ttl_seconds})
    return int(ttl)

