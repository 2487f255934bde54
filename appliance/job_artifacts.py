"""Job artifacts: a JSON report and per-task logs of every finished job, kept for a while.

Written from the Control DB (tasks and events) under ``<org>/jobs/<job_id>/`` with a
"retain until" on every object, so the sweeper needs nothing but the object store. Events
never carry secrets, so neither do the artifacts.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any, BinaryIO

from appliance.control.models import JobEvent, PrepareJob, Task
from appliance.errors import NotFound
from appliance.objectstore.store import check_key, expired_keys

if TYPE_CHECKING:
    from appliance.context import AppContext

DEFAULT_RETENTION = dt.timedelta(days=30)
REPORT = "report.json"
JOB_LOG = "job"  # log events that belong to no task


def job_prefix(org: str, job_id: str) -> str:
    return f"{org}/jobs/{job_id}/"


def write_job_artifacts(ctx: AppContext, job_id: str, *,
                        retain_seconds: float = DEFAULT_RETENTION.total_seconds(),
                        now: dt.datetime | None = None, server_logs: dict[str, bytes] | None = None) -> list[str]:
    """Write the job's report and logs; returns the keys written. Call it when a job ends.

    ``server_logs`` are the Postgres server logs of the job's build clones, by volume id: what
    the server said about a failed step (or a crash) is often more than psql could."""
    job = PrepareJob.get_or_none(PrepareJob.job_id == job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    now = now or dt.datetime.now(dt.UTC)
    until = now + dt.timedelta(seconds=retain_seconds)
    tasks = list(Task.select().where(Task.job == job).order_by(Task.position))
    prefix = job_prefix(job.org, job.job_id)
    written = [ctx.objects.put_bytes(prefix + REPORT, json.dumps(job_report(job, tasks), indent=2).encode(),
                                     retain_until=until).key]
    for task_id, lines in _log_lines(job).items():
        key = f"{prefix}logs/{task_id}.log"
        written.append(ctx.objects.put_bytes(key, "".join(lines).encode(), retain_until=until).key)
    for volume_id, data in (server_logs or {}).items():
        if data:
            key = f"{prefix}logs/postgres-{volume_id}.log"
            written.append(ctx.objects.put_bytes(key, data, retain_until=until).key)
    return written


def job_report(job: PrepareJob, tasks: list[Task]) -> dict[str, Any]:
    """Status, timings per task, and per step whether it was a cache hit or was built."""
    return {
        "job_id": job.job_id, "org": job.org, "status": job.status, "prepare_kind": job.prepare_kind,
        "image_id": job.image_id, "resolved_image_id": job.resolved_image_id, "signature": job.signature,
        "plan_only": job.plan_only, "created_at": _ts(job.created_at), "started_at": _ts(job.started_at),
        "finished_at": _ts(job.finished_at), "duration_seconds": _seconds(job.started_at, job.finished_at),
        "result": {"state_id": job.result_state_id, "instance_id": job.result_instance_id},
        "error": json.loads(job.error_json) if job.error_json else None,
        "tasks": [{"task_id": t.task_id, "type": t.type, "status": t.status, "cached": t.cached,
                   "decision": None if t.cached is None else ("cached" if t.cached else "built"),
                   "input": {"kind": t.input_kind, "id": t.input_id} if t.input_kind else None,
                   "task_hash": t.task_hash, "output_state_id": t.output_state_id, "summary": t.summary,
                   "started_at": _ts(t.started_at), "finished_at": _ts(t.finished_at),
                   "duration_seconds": _seconds(t.started_at, t.finished_at)} for t in tasks],
    }


def _log_lines(job: PrepareJob) -> dict[str, list[str]]:
    lines: dict[str, list[str]] = {}
    events = JobEvent.select().where((JobEvent.job == job) & (JobEvent.type == "log")).order_by(JobEvent.seq)
    for event in events:
        message = event.message or ""
        lines.setdefault(event.task_id or JOB_LOG, []).append(
            f"{_ts(event.ts)} {message}" + ("" if message.endswith("\n") else "\n"))
    return lines


def list_job_artifacts(ctx: AppContext, org: str, job_id: str) -> list[dict[str, Any]]:
    """``[{name, size_bytes, retain_until}]``, names relative to the job (``logs/plan.log``)."""
    prefix = job_prefix(org, job_id)
    return [{"name": info.key[len(prefix):], "size_bytes": info.size,
             "retain_until": _ts(info.retain_until)} for info in ctx.objects.list(prefix)]


def open_job_artifact(ctx: AppContext, org: str, job_id: str, name: str) -> BinaryIO:
    """A streaming reader of one artifact; ``NotFound`` for unknown names (and bad ones)."""
    try:
        key = check_key(job_prefix(org, job_id) + name)
    except Exception:
        raise NotFound(f"artifact {name} of job {job_id} not found") from None
    try:
        return ctx.objects.open(key)
    except NotFound:
        raise NotFound(f"artifact {name} of job {job_id} not found") from None


def sweep_expired_artifacts(ctx: AppContext, now: dt.datetime | None = None) -> int:
    """Delete every object this installation wrote whose retention has ended; returns how many."""
    now = now or dt.datetime.now(dt.UTC)
    expired = expired_keys([info for info in ctx.objects.list("") if ctx.objects.wrote(info)], now)
    for key in expired:
        ctx.objects.delete(key)
    return len(expired)


def _ts(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(timespec="milliseconds") + "Z"


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start and end else None
