"""Per-org quotas: checked before work starts (admission) and again at bind.

Counts are read from the Control DB at the moment of the check, so a freed slot (a job that
ended, an instance deleted) is usable at once. Pooled warm-pool clones belong to nobody and
count against no org until a prepare binds them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import peewee as pw

from appliance.control.models import Instance, OrgQuota, PrepareJob, State, utcnow
from appliance.errors import QuotaExceeded, QuotaForbids
from appliance.ids import valid_org
from appliance.runtime.base import Limits as RuntimeLimits
from appliance.settings import Settings

LIVE_INSTANCE = ["starting", "active", "binding"]


@dataclass(frozen=True)
class Limits:
    max_running_jobs: int
    max_queued_jobs: int
    max_instances: int
    max_state_bytes: int | None
    max_ttl_seconds: int
    instance_memory_mb: int
    instance_cpus: float


@dataclass(frozen=True)
class Usage:
    running_jobs: int
    queued_jobs: int
    instances: int
    state_bytes: int


def limits(settings: Settings, org: str) -> Limits:
    row = OrgQuota.get_or_none(OrgQuota.org == org)

    def pick(name: str, default):
        value = getattr(row, name) if row is not None else None
        return default if value is None else value
    return Limits(
        max_running_jobs=pick("max_running_jobs", settings.quota_max_running_jobs),
        max_queued_jobs=pick("max_queued_jobs", settings.quota_max_queued_jobs),
        max_instances=pick("max_instances", settings.quota_max_instances),
        max_state_bytes=pick("max_state_bytes", settings.quota_max_state_bytes),
        max_ttl_seconds=min(pick("max_ttl_seconds", settings.quota_max_ttl_seconds or settings.instance_max_ttl_seconds),
                            settings.instance_max_ttl_seconds),
        instance_memory_mb=pick("instance_memory_mb", settings.instance_memory_mb),
        instance_cpus=float(pick("instance_cpus", settings.instance_cpus)))


def instance_limits(settings: Settings, org: str) -> RuntimeLimits:
    """What each of the org's instances may use (containers enforce it)."""
    lim = limits(settings, org)
    return RuntimeLimits(lim.instance_memory_mb, lim.instance_cpus)


def usage(org: str) -> Usage:
    jobs = dict(PrepareJob.select(PrepareJob.status, pw.fn.COUNT(PrepareJob.job_id))
                .where((PrepareJob.org == org) & PrepareJob.status.in_(["queued", "running"])
                       & (PrepareJob.plan_only == False))  # noqa: E712 (SQL)
                .group_by(PrepareJob.status).tuples())
    bytes_ = (State.select(pw.fn.COALESCE(pw.fn.SUM(State.size_bytes), 0)).where(State.org == org).scalar())
    return Usage(running_jobs=jobs.get("running", 0), queued_jobs=jobs.get("queued", 0),
                 instances=live_instances(org), state_bytes=int(bytes_ or 0))


def live_instances(org: str) -> int:
    return (Instance.select().where((Instance.org == org) & Instance.status.in_(LIVE_INSTANCE)
                                    & (Instance.expires_at > utcnow())).count())


def _exceeded(name: str, limit: int, used: int, what: str) -> QuotaExceeded:
    return QuotaExceeded(f"quota exceeded: {what} ({used} of {limit})",
                         {"limit": name, "limit_value": limit, "usage": used})


def check_admission(settings: Settings, org: str, *, ttl_seconds: int) -> Limits:
    """Before a job is recorded: the request's TTL, queued jobs, live instances, state bytes.
    Returns the org's limits, for a bind that follows in the same request."""
    lim = limits(settings, org)
    check_ttl(settings, org, ttl_seconds, lim)
    now = usage(org)
    if now.queued_jobs >= lim.max_queued_jobs:
        raise _exceeded("max_queued_jobs", lim.max_queued_jobs, now.queued_jobs, "jobs waiting in the queue")
    if now.instances >= lim.max_instances:
        raise _exceeded("max_instances", lim.max_instances, now.instances, "live instances")
    if lim.max_state_bytes is not None and now.state_bytes >= lim.max_state_bytes:
        raise _exceeded("max_state_bytes", lim.max_state_bytes, now.state_bytes, "bytes of states")
    return lim


def check_ttl(settings: Settings, org: str, ttl_seconds: int, lim: Limits | None = None) -> None:
    """At admission and on every extension: an instance never lives past its org's limit."""
    limit = (lim or limits(settings, org)).max_ttl_seconds
    if ttl_seconds > limit:
        raise QuotaForbids(f"quota exceeded: ttl_seconds {ttl_seconds} is above the org's limit of {limit}",
                           {"limit": "max_ttl_seconds", "limit_value": limit, "usage": ttl_seconds})


def check_bind(settings: Settings, org: str, lim: Limits | None = None) -> None:
    """Right before an instance is handed out: others may have bound meanwhile."""
    lim, used = lim or limits(settings, org), live_instances(org)
    if used >= lim.max_instances:
        raise _exceeded("max_instances", lim.max_instances, used, "live instances")


def may_start(settings: Settings, org: str, running_jobs: int | None = None) -> bool:
    """Whether one more of the org's jobs may run now (else it waits its turn in the queue);
    ``running_jobs`` when the caller has just counted them (the scheduler counts every org at once)."""
    running = usage(org).running_jobs if running_jobs is None else running_jobs
    return running < limits(settings, org).max_running_jobs


def set_limits(org: str, changes: dict, updated_by: str) -> None:
    org = valid_org(org)
    OrgQuota.insert(org=org, updated_by=updated_by, updated_at=utcnow(), **changes).on_conflict(
        conflict_target=[OrgQuota.org],
        update={**{getattr(OrgQuota, k): v for k, v in changes.items()},
                OrgQuota.updated_by: updated_by, OrgQuota.updated_at: utcnow()}).execute()


def describe(settings: Settings, org: str) -> dict:
    return {"org": org, "limits": asdict(limits(settings, org)), "usage": asdict(usage(org))}
