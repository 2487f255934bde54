"""The RQ queues the workers drain. Redis holds only these and locks: the Control DB is the truth.

Each host has its own queue (``sqlrs-prepare@<host>``): a prepare builds and clones on one
host's store, so only that host's workers may take it. The RQ job id is our job id, so the
reconciler can tell which queued jobs Redis forgot (after a Redis restart) and enqueue them again.
"""
from __future__ import annotations

import re
import time

from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job

PREPARE_QUEUE = "sqlrs-prepare"
RUN_PREPARE = "jobs.prepare.run_prepare_job"
REFILL_WARM_POOL = "jobs.pool.refill_warm_pool"
REFILL_JOB_ID = "sqlrs-warm-pool-refill"
QUOTA_WAIT = "waiting: the org is at its running-jobs quota"
WRITE_ARTIFACTS = "jobs.artifacts.write_artifacts"


def queue_name(host: str) -> str:
    return f"{PREPARE_QUEUE}@{host}"


def prepare_queue(redis: Redis, host: str) -> Queue:
    return Queue(queue_name(host), connection=redis)


def enqueue_prepare(redis: Redis, job_id: str, host: str, *, timeout_seconds: int, at_front: bool = False) -> None:
    prepare_queue(redis, host).enqueue(
        RUN_PREPARE, job_id, job_id=job_id, job_timeout=timeout_seconds, result_ttl=3600,
        failure_ttl=7 * 86400, at_front=at_front, description=f"prepare job {job_id}")


def defer_for_quota(ctx, job, wait_seconds: float = 0.5) -> None:
    """Put a job its org may not start yet back at the end of its host's queue. The new RQ entry
    has its own id (the original one is still being worked on); a duplicate delivery is harmless,
    since only one worker can move a job from queued to running."""
    from .events import append_event
    from ..control.models import JobEvent
    if not JobEvent.select().where((JobEvent.job == job.job_id) & (JobEvent.message == QUOTA_WAIT)).exists():
        append_event(job.job_id, "log", task_id="plan", message=QUOTA_WAIT)
    time.sleep(wait_seconds)  # no hot loop while only this org's jobs are queued
    ctx.redis.set(_deferred_key(job.job_id), 1, ex=120)  # the reconciler's "does Redis know it?" says yes
    prepare_queue(ctx.redis, job.host_id or ctx.host).enqueue(
        RUN_PREPARE, job.job_id, job_id=f"{job.job_id}-w{time.time_ns()}", job_timeout=ctx.settings.step_timeout_seconds * 10,
        result_ttl=0, failure_ttl=86400, description=f"prepare job {job.job_id} (waited for its org's quota)")


def _deferred_key(job_id: str) -> str:
    return f"sqlrs:deferred:{job_id}"


def is_known_to_redis(redis: Redis, job_id: str) -> bool:
    if redis.exists(_deferred_key(job_id)):
        return True
    try:
        job = Job.fetch(job_id, connection=redis)
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) in {"queued", "started", "deferred", "scheduled"}


def enqueue_artifacts(redis: Redis, host: str, job_id: str) -> None:
    """Write a finished job's artifacts off the request path (the fast path answers first)."""
    prepare_queue(redis, host).enqueue(WRITE_ARTIFACTS, job_id, job_timeout=300, result_ttl=0, failure_ttl=3600,
                                       description=f"artifacts of job {job_id}")


def enqueue_refill(redis: Redis, host: str) -> None:
    """At most one refill per host waits in its queue: it tops up every hot state at once."""
    job_id = f"{REFILL_JOB_ID}-{re.sub(r'[^A-Za-z0-9_-]', '_', host)}"  # RQ job ids allow no more
    if not is_known_to_redis(redis, job_id):
        prepare_queue(redis, host).enqueue(REFILL_WARM_POOL, job_id=job_id, job_timeout=600, result_ttl=0,
                                     failure_ttl=3600, description="refill the warm pool")
