"""Which queued job a free worker runs next: fair share between orgs, priority within an org.

RQ entries are *tokens*, not assignments: every queued job puts one token on its host's queue,
and the worker that takes a token runs whichever of that host's queued jobs this policy names
next. So an org's burst of a hundred jobs cannot keep another org's single job waiting behind
it: RQ's first-in-first-out order only decides when a worker wakes up, never what it runs.

The policy, evaluated in the Control DB at the moment a worker is free:

1. orgs at their running-jobs quota are skipped (their jobs wait for a slot);
2. the org with the fewest jobs running (on all hosts) goes first; on a tie, the org whose
   last job started longest ago — so equal orgs take turns;
3. within the org, the highest ``priority`` first, then the oldest.

``priority`` therefore orders an org's own work and never lets one org overtake another's
share; how high a caller may set it depends on its role (``priority_max_member``/``_admin``).
"""
from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass

import peewee as pw

from appliance.context import AppContext
from appliance.control import quotas
from appliance.control.models import JobEvent, PrepareJob, utcnow
from appliance.errors import PriorityNotAllowed
from appliance.orchestrator.events import append_event
from appliance.orchestrator.queue import QUOTA_WAIT, enqueue_token, token_count

START_LOCK = "sqlrs:lock:job-start"  # one start decision at a time, across hosts: counts are global
_EPOCH = dt.datetime(1970, 1, 1)


@dataclass(frozen=True)
class Candidate:
    job_id: str
    org: str
    priority: int
    created_at: dt.datetime


def order(candidates: list[Candidate], running: dict[str, int],
          last_started: dict[str, dt.datetime]) -> list[Candidate]:
    """The candidates in the order they should start (the policy above, minus quotas)."""
    def key(c: Candidate):
        return (running.get(c.org, 0), last_started.get(c.org) or _EPOCH, -c.priority, c.created_at)
    best_per_org: dict[str, list[Candidate]] = {}
    for c in sorted(candidates, key=lambda c: (-c.priority, c.created_at)):
        best_per_org.setdefault(c.org, []).append(c)
    ordered: list[Candidate] = []
    # An org's next job is its best one; after it starts, the org counts one more running job.
    running, last_started = dict(running), dict(last_started)
    heads = {org: jobs.pop(0) for org, jobs in best_per_org.items()}
    while heads:
        nxt = min(heads.values(), key=key)
        ordered.append(nxt)
        running[nxt.org] = running.get(nxt.org, 0) + 1
        last_started[nxt.org] = dt.datetime.max  # it just started one: others go first on a tie
        rest = best_per_org[nxt.org]
        if rest:
            heads[nxt.org] = rest.pop(0)
        else:
            del heads[nxt.org]
    return ordered


def _candidates(host: str) -> list[Candidate]:
    rows = (PrepareJob.select(PrepareJob.job_id, PrepareJob.org, PrepareJob.priority, PrepareJob.created_at)
            .where((PrepareJob.status == "queued") & (PrepareJob.host_id == host)
                   & PrepareJob.parked_on.is_null()).tuples())
    return [Candidate(*row) for row in rows]


def _running_by_org() -> dict[str, int]:
    return dict(PrepareJob.select(PrepareJob.org, pw.fn.COUNT(PrepareJob.job_id))
                .where(PrepareJob.status == "running").group_by(PrepareJob.org).tuples())


def _last_started_by_org(orgs: set[str]) -> dict[str, dt.datetime]:
    return dict(PrepareJob.select(PrepareJob.org, pw.fn.MAX(PrepareJob.started_at))
                .where(PrepareJob.org.in_(list(orgs)) & PrepareJob.started_at.is_null(False))
                .group_by(PrepareJob.org).tuples())


def claim_next(ctx: AppContext) -> tuple[PrepareJob | None, list[Candidate]]:
    """Move this host's next job from queued to running and return it, with the jobs that
    only their org's running quota keeps waiting."""
    with ctx.redis.lock(START_LOCK, timeout=10, blocking_timeout=10):
        candidates = _candidates(ctx.host)
        if not candidates:
            return None, []
        running = _running_by_org()
        orgs = {c.org for c in candidates}
        at_quota = {org for org in orgs if not quotas.may_start(ctx.settings, org, running.get(org, 0))}
        startable = [c for c in candidates if c.org not in at_quota]
        waiting = [c for c in candidates if c.org in at_quota]
        for c in order(startable, running, _last_started_by_org(orgs)):
            now = utcnow()
            if PrepareJob.update(status="running", worker=f"{ctx.host}:{os.getpid()}",
                                 started_at=pw.fn.COALESCE(PrepareJob.started_at, now),  # a woken job started before
                                 heartbeat_at=now).where(
                    (PrepareJob.job_id == c.job_id) & (PrepareJob.status == "queued")
                    & (PrepareJob.host_id == ctx.host) & PrepareJob.parked_on.is_null()).execute():
                return PrepareJob.get_by_id(c.job_id), waiting
        return None, waiting


def keep_token_for(ctx: AppContext, waiting: list[Candidate], wait_seconds: float = 0.5) -> None:
    """A token that found only quota-bound jobs goes back on the queue (after a pause, so a
    worker does not spin) unless the queue already holds a token for each waiting job."""
    for c in waiting:
        if not JobEvent.select().where((JobEvent.job == c.job_id) & (JobEvent.message == QUOTA_WAIT)).exists():
            append_event(c.job_id, "log", task_id="plan", message=QUOTA_WAIT)
    if not waiting or token_count(ctx.redis, ctx.host) >= len(waiting):
        return
    time.sleep(wait_seconds)
    enqueue_token(ctx.redis, ctx.host, waiting[0].job_id, requeued=True)


def check_priority(settings, principal, priority: int) -> None:
    """Raising a job above the default is a privilege of roles; lowering it is always allowed."""
    if priority <= 0 or principal.global_admin:
        return
    cap = settings.priority_max_admin if principal.may("admin") else settings.priority_max_member
    if priority > cap:
        raise PriorityNotAllowed(
            f"priority {priority} is above what a {principal.role} may set ({cap})",
            {"priority": priority, "max_priority": cap, "role": principal.role})

