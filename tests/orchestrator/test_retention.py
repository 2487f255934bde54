"""Retention: old finished jobs and audit rows are pruned in bounded batches; live work never is."""
from __future__ import annotations

import datetime as dt

from appliance.control import audit
from appliance.control.models import AuditEvent, Instance, JobEvent, PrepareJob, Task, utcnow
from appliance.orchestrator import retention
from appliance.orchestrator.reconciler import reconcile
from tests.support.jobs import age, instance_of, lost_job


def old(ctx) -> float:
    return ctx.settings.job_retention_days + 1


def test_a_job_that_ended_before_the_retention_goes_with_its_tasks_and_events(ctx, redis):
    job = lost_job(ctx)
    age(job.job_id, old(ctx))
    assert reconcile(ctx).pruned_jobs == 1
    assert PrepareJob.get_or_none(PrepareJob.job_id == job.job_id) is None
    assert Task.select().where(Task.job == job.job_id).count() == 0
    assert JobEvent.select().where(JobEvent.job == job.job_id).count() == 0


def test_a_job_that_ended_within_the_retention_is_kept(ctx, redis):
    job = lost_job(ctx)
    age(job.job_id, ctx.settings.job_retention_days - 1)
    assert retention.prune(ctx).jobs == 0
    assert PrepareJob.get_or_none(PrepareJob.job_id == job.job_id) is not None


def test_an_old_job_whose_instance_is_still_active_is_kept(ctx, redis):
    job = lost_job(ctx)
    age(job.job_id, old(ctx))
    instance_of(job.job_id, "active")
    assert retention.prune(ctx).jobs == 0
    assert PrepareJob.get_or_none(PrepareJob.job_id == job.job_id) is not None


def test_an_old_job_whose_instance_is_being_deleted_is_kept(ctx, redis):
    job = lost_job(ctx)
    age(job.job_id, old(ctx))
    instance_of(job.job_id, "deleting")
    assert retention.prune(ctx).jobs == 0


def test_an_old_job_with_a_running_task_is_kept(ctx, redis):
    job = lost_job(ctx)
    age(job.job_id, old(ctx))
    Task.update(status="running").where((Task.job == job.job_id) & (Task.task_id == "resolve-image")).execute()
    assert retention.prune(ctx).jobs == 0


def test_an_old_job_goes_with_the_rows_of_its_expired_instances(ctx, redis):
    job = lost_job(ctx)
    age(job.job_id, old(ctx))
    instance_of(job.job_id, "expired")
    assert retention.prune(ctx).jobs == 1
    assert Instance.select().where(Instance.job_id == job.job_id).count() == 0


def test_a_pass_prunes_at_most_its_batches_and_the_next_pass_goes_on(ctx, redis):
    ctx.settings = ctx.settings.model_copy(update={"retention_batch_rows": 1})
    jobs = [lost_job(ctx) for _ in range(retention.MAX_BATCHES + 2)]
    for job in jobs:
        age(job.job_id, old(ctx))
    assert retention.prune(ctx).jobs == retention.MAX_BATCHES
    assert retention.prune(ctx).jobs == 2


def test_a_zero_retention_keeps_every_job(ctx, redis):
    ctx.settings = ctx.settings.model_copy(update={"job_retention_days": 0})
    job = lost_job(ctx)
    age(job.job_id, 10_000)
    assert retention.prune(ctx).jobs == 0


def test_audit_rows_older_than_their_own_retention_go_and_newer_ones_stay(ctx, redis):
    audit.record(org="default", actor="a", action="old.thing", outcome="ok")
    audit.record(org="default", actor="a", action="new.thing", outcome="ok")
    AuditEvent.update(at=utcnow() - dt.timedelta(days=ctx.settings.audit_retention_days + 1)).where(
        AuditEvent.action == "old.thing").execute()
    assert retention.prune(ctx).audit_rows == 1
    assert [row.action for row in AuditEvent.select()] == ["new.thing"]
