"""Admission of a prepare job: validate, plan, record, enqueue.

Everything a client can get wrong (kind, image, flags, files, includes, TTL) is checked
here, synchronously, before anything is written, so bad input answers 4xx and changes
nothing. The plan (steps, task hashes, state ids) is fixed at admission and never changes
when the job is retried.
"""
from __future__ import annotations

import json
import logging
import secrets
from dataclasses import asdict, dataclass, replace
from typing import Any

from appliance.context import AppContext
from appliance.control import counters
from appliance.control.db import write_transaction
from appliance.control.models import PrepareJob, Task, utcnow
from appliance.planning.hashing import chain_state_ids, digest
from appliance.planning.liquibase.args import LiquibaseCommand, parse_liquibase_args
from appliance.orchestrator.liquibase_plans import cached_plan
from appliance.planning.liquibase.plans import ChangesetStep, PlannedChangeset, chain, plan_key, task_rows
from appliance.planning.psql.plan import PsqlStep, plan_psql
from appliance.control.tenancy import check_may_serve
from appliance.errors import ApplianceError, InvalidArgument
from appliance.orchestrator.events import append_event, append_events, event
from appliance.control import quotas
from appliance.orchestrator.placement import place
from appliance.control.sharing import visible_copies
from appliance.orchestrator.queue import enqueue_token
from appliance.sources import local_source_root, resolve_source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedPrepare:
    """Everything admission derives from a request, before anything is written."""

    kind: str
    resolved_image: str
    source_id: str | None
    work_dir: str
    steps: list[PsqlStep]
    state_ids: list[str]
    signature: str
    liquibase: "KnownLiquibasePlan | None" = None  # a Liquibase request whose changesets are known


@dataclass(frozen=True)
class KnownLiquibasePlan:
    command: LiquibaseCommand
    version: str
    changesets: list[PlannedChangeset]


def plan_prepare(ctx: AppContext, org: str, request: dict[str, Any]) -> PlannedPrepare:
    """Validate and plan a request; raises a 4xx error for anything a client got wrong."""
    check_may_serve(ctx.isolation, org)
    kind = request.get("prepare_kind")
    if kind not in ("psql", "lb"):
        raise InvalidArgument(f"unknown prepare_kind {kind!r}; expected 'psql' or 'lb'")
    resolved_image = ctx.runtime.resolve_image(request["image_id"])
    source = resolve_source(ctx, org, request.get("source"))
    work_dir = (request.get("source") or {}).get("work_dir") or "."
    root = local_source_root(ctx, org, None) if source is None else source.root
    if kind == "lb":
        return _plan_liquibase(ctx, org, request, resolved_image, source, root, work_dir)
    plan = plan_psql(list(request.get("psql_args") or []), root=root, work_dir=work_dir,
                     stdin=request.get("stdin"))
    state_ids = chain_state_ids(resolved_image, [step.task_hash for step in plan.steps])
    signature = digest(("kind", kind), ("image", resolved_image),
                       *(("task", step.task_hash) for step in plan.steps))
    return PlannedPrepare(kind, resolved_image, source.source_id if source else None, work_dir,
                          plan.steps, state_ids, signature)


def _plan_liquibase(ctx: AppContext, org: str, request: dict[str, Any], resolved_image: str, source, root,
                    work_dir: str) -> PlannedPrepare:
    """Which changesets are pending is Liquibase's to say, on a cluster at the base: the first
    job for a request plans them itself (its ``plan-liquibase`` task); a repeated request finds
    them in the plan cache and gets its steps here, like a psql request."""
    if request.get("psql_args") or request.get("stdin") is not None:
        raise InvalidArgument("prepare_kind 'lb' takes liquibase_args, not psql_args or stdin")
    command = parse_liquibase_args(list(request.get("liquibase_args") or []))
    if source is None:
        raise InvalidArgument("prepare_kind 'lb' needs a source: the bundle or project holding the changelog")
    base = (root / work_dir).resolve()
    changelog = (base / command.changelog_file).resolve()
    if not changelog.is_relative_to(root.resolve()) or not changelog.is_file():
        raise InvalidArgument(f"changelog {command.changelog_file} is not in the source (work_dir {work_dir})",
                              {"changelog_file": command.changelog_file})
    signature = digest(("kind", "lb"), ("image", resolved_image), ("source", source.source_id),
                       ("work_dir", work_dir), *(("arg", a) for a in command.argv()))
    return PlannedPrepare("lb", resolved_image, source.source_id, work_dir, [], [], signature,
                          _known_liquibase_plan(ctx, org, resolved_image, source.source_id, work_dir, command))


def _known_liquibase_plan(ctx: AppContext, org: str, image: str, source_id: str, work_dir: str,
                          command: LiquibaseCommand) -> KnownLiquibasePlan | None:
    try:
        version = ctx.liquibase.version()
    except ApplianceError as exc:  # no Liquibase next to the API: the worker plans, as the first time
        log.debug("no plan cache lookup: %s", exc)
        return None
    key = plan_key(image=image, source_id=source_id, work_dir=work_dir, command=command, version=version)
    changesets = cached_plan(org, key)
    return None if changesets is None else KnownLiquibasePlan(command, version, changesets)


def submit_prepare(ctx: AppContext, org: str, request: dict[str, Any], *, submitted_by: str | None = None) -> PrepareJob:
    ttl = _instance_ttl(ctx, request.get("instance") or {})
    planned = plan_prepare(ctx, org, request)
    limits = None if request.get("plan_only") else quotas.check_admission(ctx.settings, org, ttl_seconds=ttl)
    kind, resolved_image, work_dir = planned.kind, planned.resolved_image, planned.work_dir
    plan_only = bool(request.get("plan_only"))
    signature = digest(("signature", planned.signature), ("plan_only", str(plan_only)))

    job_id = secrets.token_hex(16)
    lb_steps = None
    if planned.liquibase is not None:  # volatile changesets are keyed by the job: known only now
        known = planned.liquibase
        lb_steps = chain(known.changesets, image=resolved_image, command=known.command, version=known.version,
                         job_id=job_id)
        planned = replace(planned, state_ids=[s.state_id for s in lb_steps])
    planned_here = kind == "psql" or lb_steps is not None
    # A plan-only job is finished here, unless Liquibase has yet to plan it on a worker.
    placement = None if plan_only and planned_here else place(ctx, org, planned.state_ids)
    with write_transaction(ctx.db):
        job = PrepareJob.create(
            job_id=job_id, org=org, status="queued", prepare_kind=kind,
            image_id=request["image_id"], resolved_image_id=resolved_image, signature=signature,
            plan_only=plan_only, request_json=json.dumps(request, sort_keys=True),
            source_id=planned.source_id, work_dir=work_dir,
            instance_ttl_seconds=ttl, instance_name=(request.get("instance") or {}).get("name"),
            priority=int(request.get("priority") or 0), submitted_by=submitted_by,
            host_id=placement.host_id if placement else None)
        host = placement.host_id if placement else None
        if kind == "psql":
            _record_tasks(job, org, resolved_image, planned.steps, planned.state_ids, host)
        elif lb_steps is None:
            _record_liquibase_tasks(job, resolved_image)
        else:
            _record_known_liquibase_tasks(job, org, resolved_image, lb_steps, host)
        append_events(job_id, [event("status", status="queued")] + (
            [event("log", task_id="plan", message=f"placed on {placement.reason}")] if placement else []))
        if plan_only and planned_here:
            _finish_plan_only(job)
    if (placement is not None and placement.host_id == ctx.host and planned.state_ids
            and placement.cached_steps == len(planned.state_ids)):
        if _answered_from_warm_pool(ctx, job, planned.state_ids, limits):
            return job
    if placement is not None:
        try:
            enqueue_token(ctx.redis, placement.host_id, job_id)
        except Exception as exc:  # Redis down: the job is safe in the DB; the reconciler enqueues it
            log.warning("could not enqueue job %s now (%s); the reconciler will", job_id, exc)
    return job


def _answered_from_warm_pool(ctx: AppContext, job: PrepareJob, state_ids: list[str], limits) -> bool:
    from appliance.orchestrator.pooled_hits import bind_if_pooled
    try:
        return bind_if_pooled(ctx, job, state_ids, limits)
    except Exception as exc:  # the queue path still works: take it
        log.warning("job %s: binding from the warm pool at admission failed (%s); queueing it", job.job_id, exc)
        return False


def _existing(org: str, state_ids: list[str], host: str | None) -> set[str]:
    """What ``cached`` says: what the chosen host holds; for a plan-only job, what any host holds."""
    return {state_id for copy_host, state_id in visible_copies(org, state_ids) if host in (None, copy_host)}


def _record_tasks(job: PrepareJob, org: str, resolved_image: str, steps, state_ids, host: str | None) -> None:
    existing = _existing(org, state_ids, host)
    rows: list[dict[str, Any]] = []

    def add(task_id: str, type_: str, **fields: Any) -> None:
        rows.append({"job": job, "task_id": task_id, "position": len(rows), "type": type_,
                     "status": fields.pop("status", "queued"), **fields})

    add("plan", "plan", status="succeeded", started_at=utcnow(), finished_at=utcnow(),
        summary=f"{len(steps)} step(s)")
    add("resolve-image", "resolve_image", input_kind="image", input_id=job.image_id,
        summary=resolved_image)
    parent_kind, parent_id = "image", resolved_image
    for step, state_id in zip(steps, state_ids):
        add(f"execute-{step.index}", "state_execute", input_kind=parent_kind, input_id=parent_id,
            task_hash=step.task_hash, output_state_id=state_id, cached=state_id in existing,
            summary=step.summary, step_json=json.dumps(asdict(step)))
        parent_kind, parent_id = "state", state_id
    if not job.plan_only:
        add("prepare-instance", "prepare_instance", input_kind=parent_kind, input_id=parent_id)
    insert_tasks(rows)


def insert_tasks(rows: list[dict[str, Any]]) -> None:
    """Task rows in one INSERT; every row must then name every column, so the missing get
    the model's defaults."""
    columns = {key for row in rows for key in row}
    Task.insert_many([{key: row.get(key, _default(Task, key)) for key in columns} for row in rows]).execute()


def _record_liquibase_tasks(job: PrepareJob, resolved_image: str) -> None:
    """The steps (one per changeset) and the instance are added by the plan-liquibase task."""
    now = utcnow()
    insert_tasks([
        {"job": job, "task_id": "plan", "position": 0, "type": "plan", "status": "succeeded", "started_at": now,
         "finished_at": now, "summary": "Liquibase plans on a cluster at the base"},
        {"job": job, "task_id": "resolve-image", "position": 1, "type": "resolve_image", "status": "queued",
         "input_kind": "image", "input_id": job.image_id, "summary": resolved_image},
        {"job": job, "task_id": "plan-liquibase", "position": 2, "type": "plan_liquibase", "status": "queued",
         "input_kind": "image", "input_id": resolved_image, "summary": "liquibase update-sql"},
    ])


def _record_known_liquibase_tasks(job: PrepareJob, org: str, resolved_image: str, steps: list[ChangesetStep],
                                  host: str | None) -> None:
    existing = _existing(org, [s.state_id for s in steps], host)
    now = utcnow()
    insert_tasks([
        {"job": job, "task_id": "plan", "position": 0, "type": "plan", "status": "succeeded", "started_at": now,
         "finished_at": now, "summary": f"{len(steps)} changeset(s), from the plan cache"},
        {"job": job, "task_id": "resolve-image", "position": 1, "type": "resolve_image", "status": "queued",
         "input_kind": "image", "input_id": job.image_id, "summary": resolved_image},
        *task_rows(job, steps, first_position=2, image=resolved_image, exists=existing.__contains__),
    ])


def _default(model, name: str) -> Any:
    default = model._meta.fields[name].default
    return default() if callable(default) else default


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

