"""An RQ worker process with the appliance's context installed."""
from __future__ import annotations

import logging

from redis import Redis
from rq import SimpleWorker
from rq.job import Job
from rq.queue import Queue

from appliance.context import build_context
from appliance.logs import log_context
from appliance.orchestrator.queue import SERIALIZER, worker_queues
from appliance.settings import Settings

log = logging.getLogger(__name__)


class ApplianceWorker(SimpleWorker):
    """Runs each RQ job with its id (``rq_job``) in the log context, so RQ's own lines about it
    (``Job OK``, a failure's traceback) carry it as a field, not only inside the message text.
    The prepare job a queue entry ends up running (fair share picks it, not the entry) adds its
    own ``job_id`` and ``org`` once it is chosen."""

    def execute_job(self, job: Job, queue: Queue):
        with log_context(rq_job=job.id):
            log.info("running %s from %s", job.description, queue.name)
            return super().execute_job(job, queue)


def run_worker(settings: Settings, *, burst: bool = False) -> None:
    """Jobs run in this process (no fork per job): a job's heartbeat names this pid, and the
    SQLite/Postgres connections are never shared across a fork. A worker drains only its own
    host's queue: the jobs there build and clone on this host's store."""
    import jobs.context

    ctx = build_context(settings, wait_for_control_db=True)
    jobs.context.install(ctx)
    make_worker(ctx.redis, ctx.host).work(burst=burst, logging_level=logging.getLevelName(logging.getLogger().level))


def make_worker(redis: Redis, host: str) -> SimpleWorker:
    """The RQ worker of ``host``'s queues (prepares first, then maintenance). It decodes jobs
    with the queues' JSON serializer: a pickle planted in Redis fails to decode instead of
    running."""
    return ApplianceWorker(worker_queues(redis, host), connection=redis, serializer=SERIALIZER)
