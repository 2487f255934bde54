"""Control-DB rows → API dictionaries. The only place a DSN (a secret) is ever rendered."""
from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from peewee import JOIN

from appliance.control.models import Instance, JobEvent, PrepareJob, State, Task
from appliance.instances import dsn

if TYPE_CHECKING:
    from appliance.api.auth import Principal


def ts(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def job_entry(job: PrepareJob) -> dict[str, Any]:
    return {"job_id": job.job_id, "status": job.status, "prepare_kind": job.prepare_kind,
            "image_id": job.image_id, "resolved_image_id": job.resolved_image_id,
            "signature": job.signature, "plan_only": job.plan_only, "created_at": ts(job.created_at),
            "started_at": ts(job.started_at), "finished_at": ts(job.finished_at), "org": job.org,
            "submitted_by": job.submitted_by}


def task_entry(task: Task, job_id: str) -> dict[str, Any]:
    return {"task_id": task.task_id, "job_id": job_id, "type": task.type, "status": task.status,
            "input": {"kind": task.input_kind, "id": task.input_id} if task.input_kind else None,
            "task_hash": task.task_hash, "output_state_id": task.output_state_id,
            "cached": task.cached, "summary": task.summary, "started_at": ts(task.started_at),
            "finished_at": ts(task.finished_at)}


def job_status(job: PrepareJob, viewer: Principal) -> dict[str, Any]:
    body = job_entry(job)
    tasks = Task.select().where(Task.job == job).order_by(Task.position)
    body["tasks"] = [task_entry(t, job.job_id) for t in tasks]
    body["result"] = job_result(job, viewer)
    body["error"] = json.loads(job.error_json) if job.error_json else None
    return body


def job_result(job: PrepareJob, viewer: Principal) -> dict[str, Any] | None:
    """What a finished job handed out; the DSN only while the instance lives, and only to its org."""
    if not job.result_instance_id:
        return None
    instance = Instance.get_or_none(Instance.instance_id == job.result_instance_id)
    return {"dsn": dsn(instance) if instance and instance.status == "active" and sees_dsn(viewer, instance) else None,
            "instance_id": job.result_instance_id, "state_id": job.result_state_id,
            "image_id": job.resolved_image_id}


def event(ev: JobEvent) -> dict[str, Any]:
    body: dict[str, Any] = {"type": ev.type, "ts": ts(ev.ts)}
    for key in ("task_id", "status", "message"):
        value = getattr(ev, key)
        if value is not None:
            body[key] = value
    if ev.payload_json:
        body.update(json.loads(ev.payload_json))
    return body


def state_entry(copies: list[State], refcount: int, *, shared_from: str | None = None) -> dict[str, Any]:
    """One state, from its copies on every host (oldest first); ``shared_from``: the org that
    shared it with the viewer, read-only."""
    state = copies[0]
    return {"state_id": state.state_id, "parent_state_id": state.parent_state_id,
            "image_id": state.image_id, "prepare_kind": state.prepare_kind, "summary": state.summary,
            "size_bytes": state.size_bytes, "created_at": ts(state.created_at),
            "last_used_at": ts(max(c.last_used_at for c in copies)), "use_count": sum(c.use_count for c in copies),
            "refcount": refcount, "host": state.host, "hosts": sorted({c.host for c in copies}),
            "exported": any(c.exported_at is not None for c in copies), "shared_from": shared_from}


def sees_dsn(viewer: Principal, instance: Instance) -> bool:
    """A DSN is a credential: only the owning org's members (and admins) see it."""
    return instance.org == viewer.org and viewer.may("member")


_UNJOINED = object()


def with_owner(query):
    """Instances with their owner (the submitter of the job that made or bound each), one query."""
    return query.select_extend(PrepareJob.submitted_by).join(
        PrepareJob, JOIN.LEFT_OUTER, on=(Instance.job_id == PrepareJob.job_id) & (PrepareJob.org == Instance.org),
        attr="owning_job")


def owner(instance: Instance) -> str | None:
    """Who asked for the instance: from :func:`with_owner`'s join, else one look-up."""
    joined: Any = getattr(instance, "owning_job", _UNJOINED)  # None: joined, and its job is gone
    if joined is not _UNJOINED:
        return joined.submitted_by if joined is not None else None
    if not instance.job_id:
        return None
    return PrepareJob.select(PrepareJob.submitted_by).where(
        (PrepareJob.job_id == instance.job_id) & (PrepareJob.org == instance.org)).scalar()


def instance_entry(instance: Instance, viewer: Principal) -> dict[str, Any]:
    body = {"instance_id": instance.instance_id, "state_id": instance.state_id,
            "image_id": instance.image_id, "status": instance.status, "host": instance.host,
            "port": instance.port, "created_at": ts(instance.created_at),
            "expires_at": ts(instance.expires_at), "name": instance.name, "job_id": instance.job_id,
            "owner": owner(instance)}
    if instance.status == "deleting":  # a teardown that failed: why, and when the reconciler tries again
        body.update(teardown_error=instance.teardown_error, teardown_attempts=instance.teardown_attempts,
                    teardown_retry_at=ts(instance.teardown_retry_at))
    if instance.status == "active" and sees_dsn(viewer, instance):
        body["dsn"] = dsn(instance)
    return body
