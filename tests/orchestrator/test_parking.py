"""A job that needs a build another job is doing parks instead of holding its worker, and is
woken when that build's lock is released: against a real Control DB and Redis."""
from __future__ import annotations

import pytest

from appliance.control.models import JobEvent, PrepareJob, Task
from appliance.orchestrator import parking
from appliance.orchestrator.locks import LockSet
from appliance.orchestrator.queue import token_count
from appliance.orchestrator.reconciler import reconcile
from appliance.orchestrator.scheduling import claim_next
from appliance.orchestrator.submit import submit_prepare

LOCK = "state:{host}:default:" + "5" * 64
REQUEST = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "select 1"]}


def never_cancelled() -> bool:
    return False


@pytest.fixture
def lock_name(ctx) -> str:
    return LOCK.format(host=ctx.host)


@pytest.fixture
def running_job(ctx) -> PrepareJob:
    """A submitted job a worker has claimed, its queue emptied (tokens counted from zero)."""
    job = submit_prepare(ctx, "default", dict(REQUEST))
    claimed, _ = claim_next(ctx)
    assert claimed is not None and claimed.job_id == job.job_id
    Task.update(status="running").where((Task.job == job) & (Task.position == 0)).execute()
    ctx.redis.flushdb()
    return claimed


def job_row(job_id: str) -> PrepareJob:
    return PrepareJob.get_by_id(job_id)


def park_behind_a_holder(ctx, job: PrepareJob, lock_name: str) -> LockSet:
    """Another job's set holds the lock; ``job`` finds it taken and parks. The lock is held until
    the returned block is exited (or dropped: keep a reference)."""
    holder = LockSet(ctx.redis, ttl_seconds=30, job_id="f" * 32)
    holding = holder.hold(lock_name, cancelled=never_cancelled)
    holding.__enter__()
    with pytest.raises(parking.Parked):
        with LockSet(ctx.redis, ttl_seconds=30, job_id=job.job_id).hold(lock_name, cancelled=never_cancelled):
            pass
    return holding


def test_a_job_that_finds_the_lock_taken_goes_back_to_the_queue_parked(ctx, running_job, lock_name):
    holding = park_behind_a_holder(ctx, running_job, lock_name)  # noqa: F841  held until the test ends
    row = job_row(running_job.job_id)
    assert (row.status, row.parked_on, row.worker) == ("queued", lock_name, None)
    assert not Task.select().where((Task.job == running_job) & (Task.status == "running")).exists()
    assert JobEvent.select().where((JobEvent.job == running_job.job_id)
                                   & (JobEvent.message == parking.PARKED_MESSAGE)).exists()


def test_a_parked_job_is_not_claimed_by_a_free_worker(ctx, running_job, lock_name):
    holding = park_behind_a_holder(ctx, running_job, lock_name)  # noqa: F841  held until the test ends
    claimed, _ = claim_next(ctx)
    assert claimed is None


def test_releasing_the_lock_wakes_the_parked_job_with_a_token(ctx, running_job, lock_name):
    holding = park_behind_a_holder(ctx, running_job, lock_name)
    assert token_count(ctx.redis, ctx.host) == 0
    holding.__exit__(None, None, None)
    assert job_row(running_job.job_id).parked_on is None
    assert token_count(ctx.redis, ctx.host) == 1
    claimed, _ = claim_next(ctx)
    assert claimed is not None and claimed.job_id == running_job.job_id


def test_a_woken_job_keeps_the_time_it_first_started(ctx, running_job, lock_name):
    first_start = job_row(running_job.job_id).started_at
    park_behind_a_holder(ctx, running_job, lock_name).__exit__(None, None, None)
    claimed, _ = claim_next(ctx)
    assert claimed.started_at == first_start


def test_a_lock_released_while_the_job_parked_wakes_it_at_once(ctx, running_job, lock_name):
    """The holder released between the job's failed attempt and its joining the waiters."""
    parking.park(ctx.redis, running_job.job_id, lock_name)  # nobody holds the lock now
    assert job_row(running_job.job_id).parked_on is None
    assert token_count(ctx.redis, ctx.host) == 1


def test_the_reconciler_wakes_a_job_whose_lock_holder_died(ctx, running_job, lock_name):
    holding = park_behind_a_holder(ctx, running_job, lock_name)
    ctx.redis.delete(parking.LOCK_PREFIX + lock_name)  # the holder's lock expired: it was SIGKILLed
    del holding
    report = reconcile(ctx)
    assert report.woken_jobs == [running_job.job_id]
    assert job_row(running_job.job_id).parked_on is None and token_count(ctx.redis, ctx.host) >= 1


def test_cancelling_a_parked_job_ends_it_and_waking_it_later_does_nothing(ctx, running_job, lock_name):
    from appliance.orchestrator.deletion import request_cancel
    holding = park_behind_a_holder(ctx, running_job, lock_name)
    assert request_cancel(job_row(running_job.job_id))
    holding.__exit__(None, None, None)
    assert job_row(running_job.job_id).status == "cancelled"
    assert token_count(ctx.redis, ctx.host) == 0
