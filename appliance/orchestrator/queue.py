"""The RQ queue the workers drain. Redis holds only this and locks: the Control DB is the truth.

The RQ job id is our job id, so the reconciler can tell which queued jobs Redis forgot
(after a Redis restart) and enqueue them again.
"""
from __future__ import annotations

from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job

PREPARE_QUEUE = "sqlrs-prepare"
RUN_PREPARE = "jobs.prepare.run_prepare_job"
REFILL_WARM_POOL = "jobs.pool.refill_warm_pool"
REFILL_JOB_ID = "sqlrs-warm-pool-refill"


def prepare_queue(redis: Redis) -> Queue:
    return Queue(PREPARE_QUEUE, connection=redis)


def enqueue_prepare(redis: Redis, job_id: str, *, timeout_seconds: int, at_front: bool = False) -> None:
    prepare_queue(redis).enqueue(
        RUN_PREPARE, job_id, job_id=job_id, job_timeout=timeout_seconds, result_ttl=3600,
        failure_ttl=7 * 86400, at_front=at_front, description=f"prepare job {job_id}")


def is_known_to_redis(redis: Redis, job_id: str) -> bool:
    try:
        job = Job.fetch(job_id, connection=redis)
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) in {"queued", "started", "deferred", "scheduled"}


def enqueue_refill(redis: Redis) -> None:
    """At most one refill waits in the queue: it tops up every hot state at once."""
    if not is_known_to_redis(redis, REFILL_JOB_ID):
        prepare_queue(redis).enqueue(REFILL_WARM_POOL, job_id=REFILL_JOB_ID, job_timeout=600, result_ttl=0,
                                     failure_ttl=3600, description="refill the warm pool")
