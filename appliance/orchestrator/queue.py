"""The RQ queues the workers drain. Redis holds only these and locks: the Control DB is the truth.

Each host has its own queue (``sqlrs-prepare@<host>``): a prepare builds and clones on one
host's store, so only that host's workers may take it. Work that makes no one wait now (warm-pool
refills, the artifacts of a hit answered at admission) goes to the host's second queue,
``sqlrs-maintenance@<host>``, which a worker drains only when no prepare is waiting: under
load, a queued prepare never waits behind pool refills. A prepare's queue entry is a *token*:
the worker that takes it runs whichever queued job the scheduler names (see ``scheduling``).
There is one token per queued job, so the reconciler can count what Redis forgot (after a
Redis restart) and put it back. A token's RQ id is its job's id, which ``rq info`` shows.

Queue entries are data: every queue, job fetch and worker uses RQ's JSON serializer, never
its default (pickle), so a payload written into Redis by anyone but us cannot run code in a
worker when it is read back; it fails to decode instead. Every job's arguments are ids.
"""
from __future__ import annotations

import re
import time

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from appliance.ids import HEX_ID_PATTERN

PREPARE_QUEUE = "sqlrs-prepare"
MAINTENANCE_QUEUE = "sqlrs-maintenance"
RUN_PREPARE = "jobs.prepare.run_prepare_job"
REFILL_WARM_POOL = "jobs.pool.refill_warm_pool"
REFILL_JOB_ID = "sqlrs-warm-pool-refill"
QUOTA_WAIT = "waiting: the org is at its running-jobs quota"
TOKEN_ID = re.compile(HEX_ID_PATTERN.removesuffix("$") + r"(-w[0-9]+)?$")  # a job id, or a job id and when it went back
AFTER_ADMISSION = "jobs.artifacts.after_admission"
RUN_TRANSFER = "jobs.transfer.run_transfer"
SERIALIZER = JSONSerializer  # the one serializer of every queue, job and worker (see above)
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError)  # what a Redis that is down or restarting raises


def queue_name(host: str) -> str:
    return f"{PREPARE_QUEUE}@{host}"


def prepare_queue(redis: Redis, host: str) -> Queue:
    return Queue(queue_name(host), connection=redis, serializer=SERIALIZER)


def maintenance_queue(redis: Redis, host: str) -> Queue:
    return Queue(f"{MAINTENANCE_QUEUE}@{host}", connection=redis, serializer=SERIALIZER)


def worker_queues(redis: Redis, host: str) -> list[Queue]:
    """What a host's workers drain, in order: prepares first, maintenance when none waits."""
    return [prepare_queue(redis, host), maintenance_queue(redis, host)]


def enqueue_token(redis: Redis, host: str, job_id: str, *, requeued: bool = False) -> None:
    """One more job is waiting on ``host``. No RQ timeout: whichever job the token runs is
    bounded by its steps' timeouts and watched through its heartbeat, and a token cannot know
    in advance how many steps that job has."""
    token_id = f"{job_id}-w{time.time_ns()}" if requeued else job_id
    prepare_queue(redis, host).enqueue(
        RUN_PREPARE, job_id, job_id=token_id, job_timeout=-1, result_ttl=0 if requeued else 3600,
        failure_ttl=7 * 86400, description=f"prepare job {job_id}")


def token_count(redis: Redis, host: str) -> int:
    """Tokens waiting on the host's queue (warm-pool refills and artifact writes are not tokens)."""
    return sum(1 for job_id in prepare_queue(redis, host).get_job_ids() if TOKEN_ID.match(job_id))


def is_known_to_redis(redis: Redis, job_id: str) -> bool:
    try:
        job = Job.fetch(job_id, connection=redis, serializer=SERIALIZER)
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) in {"queued", "started", "deferred", "scheduled"}


def enqueue_after_admission(redis: Redis, host: str, job_id: str) -> None:
    """A hit answered at admission: its artifacts and a pool refill, in one entry."""
    maintenance_queue(redis, host).enqueue(AFTER_ADMISSION, job_id, job_timeout=600, result_ttl=0, failure_ttl=3600,
                                       description=f"artifacts of job {job_id}, then refill the warm pool")


def enqueue_refill(redis: Redis, host: str) -> None:
    """At most one refill per host waits in its queue: it tops up every hot state at once."""
    job_id = f"{REFILL_JOB_ID}-{re.sub(r'[^A-Za-z0-9_-]', '_', host)}"  # RQ job ids allow no more
    if not is_known_to_redis(redis, job_id):
        maintenance_queue(redis, host).enqueue(REFILL_WARM_POOL, job_id=job_id, job_timeout=600, result_ttl=0,
                                     failure_ttl=3600, description="refill the warm pool")


def enqueue_transfer(redis: Redis, host: str, transfer_id: str) -> None:
    """An export or import for ``host``'s workers (its RQ id is the transfer's id). No RQ timeout:
    a big state streams for as long as it takes, watched through the transfer's heartbeat."""
    maintenance_queue(redis, host).enqueue(RUN_TRANSFER, transfer_id, job_id=transfer_id, job_timeout=-1,
                                           result_ttl=3600, failure_ttl=7 * 86400,
                                           description=f"transfer {transfer_id}")
