"""Wake-ups for those who follow a job's events.

Events are rows (``JobEvent``); a follower (the API's event stream) reads them. So that a
follower need not poll the Control DB often, whoever commits a job's events then publishes the
job id on Redis (channel ``sqlrs:job-events:<job_id>``), and followers wait on that. A wake-up
is a hint, never the data: one lost on the way (Redis down, a follower subscribing late) costs
latency up to the follower's slow poll, never an event.

A process says where to publish once, when it builds its context (:func:`publish_with`);
until then nothing is published. Announced inside a transaction, a wake-up waits for the
outermost commit (``db.write_transaction`` calls :func:`flush`), so a woken follower finds the
rows; a rolled-back transaction's wake-ups are dropped. Publishing is done by a background
thread of the process, so committing events never waits on Redis.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "sqlrs:job-events:"
CHANNEL_PATTERN = CHANNEL_PREFIX + "*"

_redis: Callable[[], Any] | None = None
_pending = threading.local()
_outbox: queue.SimpleQueue[str] = queue.SimpleQueue()
_publisher_pid: int | None = None
_publisher_lock = threading.Lock()


def channel(job_id: str) -> str:
    return CHANNEL_PREFIX + job_id


def job_of(channel_name: str | bytes) -> str:
    """The job id a wake-up on ``channel_name`` is for."""
    name = channel_name.decode() if isinstance(channel_name, bytes) else channel_name
    return name.removeprefix(CHANNEL_PREFIX)


def publish_with(redis: Callable[[], Any] | None) -> None:
    """Publish this process's wake-ups on the Redis ``redis()`` returns (asked at first use);
    None: publish nothing."""
    global _redis
    _redis = redis


def announce(job_id: str, *, in_transaction: bool) -> None:
    """Tell followers that ``job_id`` has new events: now, or once the transaction the events
    were written in has committed."""
    if in_transaction:
        _jobs().add(job_id)
    else:
        _send(job_id)


def flush() -> None:
    """The outermost transaction committed: publish what was announced inside it."""
    jobs = _jobs()
    while jobs:
        _send(jobs.pop())


def discard() -> None:
    """The outermost transaction rolled back: what was announced inside it never happened."""
    _jobs().clear()


def _jobs() -> set[str]:
    if not hasattr(_pending, "jobs"):
        _pending.jobs = set()
    return _pending.jobs


def _send(job_id: str) -> None:
    if _redis is None:
        return
    _start_publisher()
    _outbox.put(job_id)


def _start_publisher() -> None:
    """One publishing thread per process (started again in a forked child, which has none)."""
    global _publisher_pid
    if _publisher_pid == os.getpid():
        return
    with _publisher_lock:
        if _publisher_pid != os.getpid():
            threading.Thread(target=_publish_forever, name="sqlrs-wakeups", daemon=True).start()
            _publisher_pid = os.getpid()


def _publish_forever() -> None:
    while True:
        jobs = {_outbox.get()}
        while not _outbox.empty():  # what queued up meanwhile goes in one round trip, once per job
            jobs.add(_outbox.get_nowait())
        redis = _redis
        if redis is None:
            continue
        try:
            pipe = redis().pipeline(transaction=False)
            for job_id in jobs:
                pipe.publish(channel(job_id), b"")
            pipe.execute()
        except Exception as exc:  # a hint only: followers still poll
            log.debug("no wake-up for %d job(s): %s", len(jobs), exc)
