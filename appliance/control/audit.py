"""The audit log: one append-only row per action on an object (or failed login).

Rows carry ids, outcomes and short reasons, never request bodies, tokens or passwords.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

import peewee as pw

from appliance.control.models import AuditEvent, utcnow


def record(*, org: str | None, actor: str, action: str, outcome: str, object_kind: str | None = None,
           object_id: str | None = None, source: str | None = None, details: dict[str, Any] | None = None) -> None:
    AuditEvent.create(at=utcnow(), org=org, actor=actor[:255], action=action, object_kind=object_kind,
                      object_id=object_id[:128] if object_id else None, outcome=outcome,
                      source=source[:255] if source else None,
                      details_json=json.dumps(details, sort_keys=True) if details else None)


def instance_bound(job, instance, *, from_pool: bool) -> None:
    """A prepare handed out an instance: who asked (the job's submitter), which instance."""
    record(org=job.org, actor=job.submitted_by or f"job:{job.job_id}", action="instance.bound", outcome="ok",
           object_kind="instance", object_id=instance.instance_id,
           details={"job_id": job.job_id, "state_id": instance.state_id, "from_pool": from_pool})


def events(*, org: str | None, since: dt.datetime | None = None, action: str | None = None) -> pw.ModelSelect:
    """The audit rows these filters select, unordered (a list orders and pages them by id, which
    is the order they were written in); ``org`` None means every org (the global admin's view)."""
    query = AuditEvent.select()
    if org is not None:
        query = query.where(AuditEvent.org == org)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if action:
        query = query.where(AuditEvent.action == action)
    return query
