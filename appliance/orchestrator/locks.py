"""Single-flight: one builder per state (and per base image), across every worker.

A lock lives in Redis with a TTL renewed by the holder's heartbeat, so a SIGKILLed worker's
lock frees itself. A job that finds a lock taken parks (``orchestrator.parking``): it gives its
worker back, and the holder wakes it on release. It re-checks the Control DB after acquiring:
whoever built the state first wins and everyone else sees a cache hit.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from redis import Redis
from redis.lock import Lock

from appliance.errors import Cancelled
from appliance.orchestrator import parking
from appliance.orchestrator.queue import UNAVAILABLE as QUEUE_UNAVAILABLE

log = logging.getLogger(__name__)


def build_lock(kind: str, host: str, org: str, key: str) -> str:
    """One builder per (state or base) per host: another host builds its own copy."""
    return f"{kind}:{host}:{org}:{key}"


def build_lock_key(kind: str, host: str, org: str, key: str) -> str:
    """The Redis key of ``build_lock``, for those who only look (the orphan sweep)."""
    return parking.LOCK_PREFIX + build_lock(kind, host, org, key)


class LockSet:
    """The locks a job holds; its heartbeat thread extends all of them. A job's set
    (``job_id`` given) parks the job when a lock is taken; a set without a job waits."""

    def __init__(self, redis: Redis, ttl_seconds: float, *, job_id: str | None = None):
        self.redis = redis
        self.ttl = ttl_seconds
        self.job_id = job_id
        self._held: list[Lock] = []

    @contextmanager
    def hold(self, name: str, *, cancelled: Callable[[], bool]) -> Iterator[None]:
        """Hold ``name`` for the block. Taken by another: the job parks (``parking.Parked``
        is raised), or, without a job, this waits for it (until ``cancelled``)."""
        lock = self.redis.lock(parking.LOCK_PREFIX + name, timeout=self.ttl, thread_local=False)
        if self.job_id is not None:
            if not self._try(lock, wait=0.0):
                parking.park(self.redis, self.job_id, name)
                raise parking.Parked(name)
        else:
            while not self._try(lock, wait=0.5):
                if cancelled():
                    raise Cancelled("cancelled while waiting for another job to build the same state")
        self._held.append(lock)
        try:
            yield
        finally:
            self._held.remove(lock)
            try:
                lock.release()
            except Exception:  # expired and taken over: nothing of ours left to release
                pass
            else:
                try:
                    parking.wake(self.redis, name)
                except Exception as exc:  # the reconciler wakes jobs parked on a free lock
                    log.warning("could not wake the jobs waiting for %s now: %s", name, exc)

    def _try(self, lock: Lock, *, wait: float) -> bool:
        """One attempt, waiting up to ``wait`` seconds. A Redis that is away is waited for, as
        long as a lock lives (``ttl``): `up` restarts its private one within a second or two."""
        unreachable_since = None
        while True:
            try:
                if wait <= 0:
                    return lock.acquire(blocking=False)
                return lock.acquire(blocking=True, blocking_timeout=wait)
            except QUEUE_UNAVAILABLE:
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > self.ttl:
                    raise
                time.sleep(0.5)

    def renew(self) -> None:
        for lock in list(self._held):
            try:
                lock.reacquire()
            except Exception:
                pass
