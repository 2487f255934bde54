"""Which job a free worker runs next, against a real Control DB and Redis (the e2e load bench
shows the same policy on the real stack)."""
from __future__ import annotations

import datetime as dt

from appliance.control.models import JobEvent, OrgQuota, PrepareJob, utcnow
from appliance.orchestrator.queue import QUOTA_WAIT, token_count
from appliance.orchestrator.reconciler import reconcile
from appliance.orchestrator.scheduling import Candidate, claim_next, keep_token_for, order
from appliance.orchestrator.submit import submit_prepare

T0 = dt.datetime(2026, 1, 1)


def job(org: str, n: int, priority: int = 0) -> Candidate:
    return Candidate(f"{org}-{n}", org, priority, T0 + dt.timedelta(seconds=n))


def ids(candidates: list[Candidate]) -> list[str]:
    return [c.job_id for c in candidates]


def test_one_orgs_burst_cannot_keep_another_orgs_job_waiting_behind_it():
    burst = [job("a", n) for n in range(10)]
    late = job("b", 50)
    assert ids(order(burst + [late], {}, {}))[:2] == ["a-0", "b-50"]


def test_equal_orgs_take_turns():
    jobs = [job("a", n) for n in range(3)] + [job("b", 10 + n) for n in range(3)] + [job("c", 20)]
    assert ids(order(jobs, {}, {})) == ["a-0", "b-10", "c-20", "a-1", "b-11", "a-2", "b-12"]


def test_the_org_with_fewer_jobs_running_goes_first():
    assert ids(order([job("a", 0), job("b", 1)], {"a": 2, "b": 1}, {}))[0] == "b-1"


def test_on_equal_running_counts_the_org_served_longest_ago_goes_first():
    served = {"a": T0 + dt.timedelta(hours=1), "b": T0}
    assert ids(order([job("a", 0), job("b", 1)], {}, served))[0] == "b-1"


def test_priority_orders_an_orgs_own_jobs_highest_first_then_oldest():
    jobs = [job("a", 0), job("a", 1, priority=5), job("a", 2, priority=5)]
    assert ids(order(jobs, {}, {})) == ["a-1", "a-2", "a-0"]


def test_priority_never_lets_an_org_overtake_another_orgs_share():
    assert ids(order([job("a", 0, priority=100), job("b", 1)], {"a": 1}, {}))[0] == "b-1"


REQUEST = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "select 1"]}


def submit(ctx, org: str, **extra) -> PrepareJob:
    return submit_prepare(ctx, org, {**REQUEST, **extra})


def test_a_worker_claims_the_job_fair_share_names_not_the_oldest(ctx):
    burst = [submit(ctx, "a") for _ in range(3)]
    other = submit(ctx, "b")
    PrepareJob.update(status="running", started_at=utcnow()).where(PrepareJob.job_id == burst[0].job_id).execute()
    claimed, waiting = claim_next(ctx)
    assert claimed.job_id == other.job_id and claimed.status == "running" and waiting == []
    assert PrepareJob.get_by_id(burst[1].job_id).status == "queued"


def test_an_org_at_its_running_quota_waits_while_others_start(ctx):
    OrgQuota.create(org="a", max_running_jobs=1)
    running, queued = submit(ctx, "a"), submit(ctx, "a")
    PrepareJob.update(status="running", started_at=utcnow()).where(PrepareJob.job_id == running.job_id).execute()
    claimed, waiting = claim_next(ctx)
    assert claimed is None and [c.job_id for c in waiting] == [queued.job_id]
    other = submit(ctx, "b")
    claimed, waiting = claim_next(ctx)
    assert claimed.job_id == other.job_id and [c.job_id for c in waiting] == [queued.job_id]


def test_a_token_that_found_only_waiting_jobs_goes_back_once_and_says_why(ctx, redis):
    OrgQuota.create(org="a", max_running_jobs=1)
    first, second = submit(ctx, "a"), submit(ctx, "a")
    PrepareJob.update(status="running").where(PrepareJob.job_id == first.job_id).execute()
    redis.flushall()
    _, waiting = claim_next(ctx)
    keep_token_for(ctx, waiting, wait_seconds=0)
    keep_token_for(ctx, waiting, wait_seconds=0)
    assert token_count(redis, ctx.host) == 1  # one waiting job, one token: no pile-up
    assert JobEvent.select().where((JobEvent.job == second.job_id) & (JobEvent.message == QUOTA_WAIT)).count() == 1


def test_a_cancelled_queued_job_is_never_claimed(ctx):
    cancelled = submit(ctx, "a")
    PrepareJob.update(status="cancelled").where(PrepareJob.job_id == cancelled.job_id).execute()
    assert claim_next(ctx) == (None, [])


def test_after_redis_restarts_empty_every_queued_job_gets_its_token_back_once(ctx, redis):
    jobs = [submit(ctx, org) for org in ("a", "a", "b")]
    assert token_count(redis, ctx.host) == 3
    redis.flushall()
    PrepareJob.update(created_at=utcnow() - dt.timedelta(minutes=1)).execute()
    assert sorted(reconcile(ctx).requeued_jobs) == sorted(j.job_id for j in jobs)
    assert reconcile(ctx).requeued_jobs == []
    assert token_count(redis, ctx.host) == 3
