"""An RQ worker process with the appliance's context installed."""
from __future__ import annotations

import logging

from rq import SimpleWorker

from ..context import build_context
from ..orchestrator.queue import prepare_queue
from ..settings import Settings


def run_worker(settings: Settings, *, burst: bool = False) -> None:
    """Jobs run in this process (no fork per job): a job's heartbeat names this pid, and the
    SQLite/Postgres connections are never shared across a fork. A worker drains only its own
    host's queue: the jobs there build and clone on this host's store."""
    import jobs.context

    ctx = build_context(settings, wait_for_control_db=True)
    jobs.context.install(ctx)
    worker = SimpleWorker([prepare_queue(ctx.redis, ctx.host)], connection=ctx.redis)
    worker.work(burst=burst, logging_level=logging.getLevelName(logging.getLogger().level))
