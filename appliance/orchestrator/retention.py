"""Retention: the reconciler prunes old history so the Control DB does not grow for ever.

Jobs that ended more than ``job_retention_days`` ago go with their tasks, events and the rows
of their ended instances; the audit log keeps ``audit_retention_days`` of its own. Both are
pruned in batches of ``retention_batch_rows``, each its own short transaction, at most
``MAX_BATCHES`` a pass, so a backlog is worked off over several passes without holding the
Control DB. A job that still has an instance not yet ended, or a running task, is kept.
Counters (``appliance.control.counters``) live apart and are never lowered by pruning.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import peewee as pw

from appliance.context import AppContext
from appliance.control.db import write_transaction
from appliance.control.models import AuditEvent, Instance, JobEvent, PrepareJob, Task, utcnow
from appliance.orchestrator.events import TERMINAL_STATUSES

MAX_BATCHES = 20
ENDED_INSTANCE = ["expired", "failed"]


@dataclass
class Pruned:
    jobs: int = 0
    audit_rows: int = 0


def prune(ctx: AppContext, *, now: dt.datetime | None = None) -> Pruned:
    now = now or utcnow()
    pruned = Pruned()
    settings = ctx.settings
    if settings.job_retention_days > 0:
        pruned.jobs = _in_batches(ctx, lambda: _prune_jobs(now - dt.timedelta(days=settings.job_retention_days),
                                                           settings.retention_batch_rows))
    if settings.audit_retention_days > 0:
        pruned.audit_rows = _in_batches(ctx, lambda: _prune_audit(
            now - dt.timedelta(days=settings.audit_retention_days), settings.retention_batch_rows))
    return pruned


def _in_batches(ctx: AppContext, batch) -> int:
    total = 0
    for _ in range(MAX_BATCHES):
        with write_transaction(ctx.db):
            removed = batch()
        total += removed
        if removed == 0:
            break
    return total


def prunable_jobs(cutoff: dt.datetime, limit: int) -> pw.ModelSelect:
    """Ended before ``cutoff``, with no instance that has not ended and no running task."""
    live_instance = Instance.select(Instance.instance_id).where(
        (Instance.job_id == PrepareJob.job_id) & Instance.status.not_in(ENDED_INSTANCE))
    running_task = Task.select(Task.id).where((Task.job == PrepareJob.job_id) & (Task.status == "running"))
    return (PrepareJob.select(PrepareJob.job_id)  # along the index on finished_at: only ended jobs have one
            .where((PrepareJob.finished_at < cutoff) & PrepareJob.status.in_(list(TERMINAL_STATUSES))
                   & ~pw.fn.EXISTS(live_instance) & ~pw.fn.EXISTS(running_task))
            .order_by(PrepareJob.finished_at).limit(limit))


def _prune_jobs(cutoff: dt.datetime, limit: int) -> int:
    job_ids = [job_id for (job_id,) in prunable_jobs(cutoff, limit).tuples()]
    if not job_ids:
        return 0
    JobEvent.delete().where(JobEvent.job.in_(job_ids)).execute()
    Task.delete().where(Task.job.in_(job_ids)).execute()
    Instance.delete().where(Instance.job_id.in_(job_ids) & Instance.status.in_(ENDED_INSTANCE)).execute()
    return PrepareJob.delete().where(PrepareJob.job_id.in_(job_ids)).execute()


def _prune_audit(cutoff: dt.datetime, limit: int) -> int:
    doomed = [row_id for (row_id,) in AuditEvent.select(AuditEvent.id).where(AuditEvent.at < cutoff)
              .order_by(AuditEvent.at).limit(limit).tuples()]  # oldest first, along the index on `at`
    if not doomed:
        return 0
    return AuditEvent.delete().where(AuditEvent.id.in_(doomed)).execute()
