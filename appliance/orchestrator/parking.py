"""Jobs that wait for another job's build without holding a worker.

A job that needs a build lock another job holds (the same state, or the same base cluster, is
being built) does not wait on its worker: it *parks*. It goes back to ``queued`` with
``parked_on`` naming the lock, its running task back to ``queued`` (what it finished stays
finished), and its worker takes the next job. Whoever releases the lock wakes the jobs parked
on it: each gets ``parked_on`` cleared and a token, and resumes at its first unfinished task,
where it usually finds the state built (a cache hit).

No wake-up is lost: a job parks in the Control DB, then joins the lock's waiters in Redis, then
looks at the lock once more and wakes the waiters itself if it was released meanwhile. A holder
that died without waking anyone leaves a lock that expires; the reconciler wakes the jobs parked
on a lock that no longer exists (:func:`wake_orphans`).
"""
from __future__ import annotations

import logging

from redis import Redis

from appliance.control.db import write_transaction
from appliance.control.models import PrepareJob, Task
from appliance.orchestrator.events import append_event
from appliance.orchestrator.queue import enqueue_token

log = logging.getLogger(__name__)

WAITERS_PREFIX = "sqlrs:lock-waiters:"
LOCK_PREFIX = "sqlrs:lock:"  # how LockSet names a build lock in Redis
PARKED_MESSAGE = "another job is building what this one needs next; this job waits without holding a worker"


class Parked(Exception):
    """Raised out of a job's run when it parked on ``lock``."""

    def __init__(self, lock: str):
        super().__init__(lock)
        self.lock = lock


def park(redis: Redis, job_id: str, lock: str) -> None:
    """Put a running job back in the queue, parked on ``lock``; wake it at once if the lock was
    released while it parked."""
    with write_transaction(PrepareJob._meta.database):
        PrepareJob.update(status="queued", parked_on=lock, worker=None, heartbeat_at=None).where(
            (PrepareJob.job_id == job_id) & (PrepareJob.status == "running")).execute()
        Task.update(status="queued", started_at=None).where(
            (Task.job == job_id) & (Task.status == "running")).execute()
        append_event(job_id, "status", status="queued")
        append_event(job_id, "log", message=PARKED_MESSAGE)
    redis.sadd(WAITERS_PREFIX + lock, job_id)
    if not redis.exists(LOCK_PREFIX + lock):
        wake(redis, lock)
    log.info("job %s parked until %s is released", job_id, lock)


def wake(redis: Redis, lock: str) -> list[str]:
    """The lock was released: give each job parked on it a token again."""
    woken = []
    while job_ids := redis.spop(WAITERS_PREFIX + lock, 100):
        for raw in job_ids:
            job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            if _unpark(redis, job_id, lock):
                woken.append(job_id)
    return woken


def wake_orphans(redis: Redis) -> list[str]:
    """Jobs parked on a lock nobody holds any more (its holder died, or a wake-up was lost)."""
    woken = []
    for job_id, lock in (PrepareJob.select(PrepareJob.job_id, PrepareJob.parked_on)
                         .where((PrepareJob.status == "queued") & PrepareJob.parked_on.is_null(False)).tuples()):
        if not redis.exists(LOCK_PREFIX + lock) and _unpark(redis, job_id, lock):
            redis.srem(WAITERS_PREFIX + lock, job_id)
            woken.append(job_id)
    return woken


def _unpark(redis: Redis, job_id: str, lock: str) -> bool:
    job = PrepareJob.get_or_none(PrepareJob.job_id == job_id)
    if job is None or not PrepareJob.update(parked_on=None).where(
            (PrepareJob.job_id == job_id) & (PrepareJob.parked_on == lock)
            & (PrepareJob.status == "queued")).execute():
        return False  # cancelled, moved, or already woken by someone else
    enqueue_token(redis, job.host_id, job_id, requeued=True)
    return True
