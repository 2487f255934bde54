"""The append-only event log of a prepare job (what `/events` replays and follows).

Events are rows in the Control DB, numbered per job from 0, so a client can resume from
any point and a restarted API loses nothing. Nothing secret is ever put in an event.
"""
from __future__ import annotations

import json
from typing import Any

import peewee as pw

from appliance.control import wakeups
from appliance.control.db import write_transaction
from appliance.control.models import JobEvent, PrepareJob, utcnow

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
MAX_MESSAGE_CHARS = 16_000


def event(type: str, *, task_id: str | None = None, status: str | None = None, message: str | None = None,
          result: dict[str, Any] | None = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
    """One event's row, for :func:`append_events`."""
    payload = {k: v for k, v in (("result", result), ("error", error)) if v is not None}
    if message is not None and len(message) > MAX_MESSAGE_CHARS:
        message = "…" + message[-MAX_MESSAGE_CHARS:]
    return {"type": type, "task_id": task_id, "status": status, "message": message,
            "payload_json": json.dumps(payload) if payload else None}


def append_event(job_id: str, type: str, **fields: Any) -> None:
    append_events(job_id, [event(type, **fields)])


def append_events(job_id: str, events: list[dict[str, Any]]) -> None:
    """Append events in order, numbered after the job's last one, in one round trip; then wake
    whoever follows the job (after the commit, so a follower woken finds them)."""
    db = JobEvent._meta.database
    if isinstance(db, pw.DatabaseProxy):
        db = db.obj
    for _attempt in range(20):
        try:
            with write_transaction(db):
                last = (JobEvent.select(pw.fn.MAX(JobEvent.seq))
                        .where(JobEvent.job == job_id).scalar())
                first, now = 0 if last is None else last + 1, utcnow()
                JobEvent.insert_many([{**row, "job": job_id, "seq": first + n, "ts": now}
                                      for n, row in enumerate(events)]).execute()
        except pw.IntegrityError:
            continue  # another writer took these seqs; take the next ones
        wakeups.announce(job_id, in_transaction=db.in_transaction())
        return
    raise RuntimeError(f"could not append an event to job {job_id}")


def events_after(job_id: str, after_seq: int) -> list[JobEvent]:
    return list(JobEvent.select().where((JobEvent.job == job_id) & (JobEvent.seq > after_seq))
                .order_by(JobEvent.seq))


def job_is_terminal(job_id: str) -> bool:
    status = PrepareJob.select(PrepareJob.status).where(PrepareJob.job_id == job_id).scalar()
    return status is None or status in TERMINAL_STATUSES
