"""An RQ worker process with the appliance's context installed."""
from __future__ import annotations

import logging

from redis import Redis
from rq import SimpleWorker

from appliance.context import build_context
from appliance.orchestrator.queue import SERIALIZER, worker_queues
from appliance.settings import Settings


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
    return SimpleWorker(worker_queues(redis, host), connection=redis, serializer=SERIALIZER)
