"""Wake-ups for those who follow a job's events.

Events are rows (``JobEvent``); a follower (the API's event stream) reads them. So that a
follower need not poll the Control DB often, whoever commits a job's events then publishes the
job id on Redis (channel ``sqlrs:job-events:<job_id>``), and followers wait on that. A wake-up
is a hint, never the data: one lost on the way (Redis down, a follower subscribing late) costs
latency up to the follower's slow poll, never an event.

A process says where to publish once, when it builds its context (:func:`publish_with`);
until then nothing is published. Announced inside a transaction, a wake-up waits for the
outermost commit (``db.write_transaction`` calls :func:`flush`), so a woken follower finds the
rows; a rolled-back transaction's wake-ups are dropped.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "sqlrs:job-events:"
CHANNEL_PATTERN = CHANNEL_PREFIX + "*"

MUTE_SECONDS = 5.0  # after a failed publish, publish nothing for this long (appends never wait on Redis)

_redis: Callable[[], Any] | None = None
_muted_until = 0.0
_pending = threading.local()


def channel(job_id: str) -> str:
    return CHANNEL_PREFIX + job_id


def job_of(channel_name: str | bytes) -> str:
    """The job id a wake-up on ``channel_name`` is for."""
    name = channel_name.decode() if isinstance(channel_name, bytes) else channel_name
    return name.removeprefix(CHANNEL_PREFIX)


def publish_with(redis: Callable[[], Any] | None) -> None:
    """Publish this process's wake-ups on the Redis ``redis()`` returns (asked at first use; give
    it short socket timeouts: an append waits for its publish); None: publish nothing."""
    global _redis
    _redis = redis


def announce(job_id: str, *, in_transaction: bool) -> None:
    """Tell followers that ``job_id`` has new events: now, or once the transaction the events
    were written in has committed."""
    if in_transaction:
        _jobs().add(job_id)
    else:
        _publish(job_id)


def flush() -> None:
    """The outermost transaction committed: publish what was announced inside it."""
    jobs = _jobs()
    while jobs:
        _publish(jobs.pop())


def discard() -> None:
    """The outermost transaction rolled back: what was announced inside it never happened."""
    _jobs().clear()


def _jobs() -> set[str]:
    if not hasattr(_pending, "jobs"):
        _pending.jobs = set()
    return _pending.jobs


def _publish(job_id: str) -> None:
    global _muted_until
    if _redis is None or time.monotonic() < _muted_until:
        return
    try:
        _redis().publish(channel(job_id), b"")
    except Exception as exc:  # a hint only: followers still poll
        _muted_until = time.monotonic() + MUTE_SECONDS
        log.debug("no wake-ups for %.0f s (job %s): %s", MUTE_SECONDS, job_id, exc)
