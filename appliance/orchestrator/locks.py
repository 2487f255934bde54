"""Single-flight: one builder per state (and per base image), across every worker.

A lock lives in Redis with a TTL renewed by the holder's heartbeat, so a SIGKILLed worker's
lock frees itself. Waiters re-check the Control DB after acquiring: whoever built the state
first wins and everyone else sees a cache hit.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from redis import Redis
from redis.lock import Lock

from appliance.errors import Cancelled
from appliance.orchestrator.queue import UNAVAILABLE as QUEUE_UNAVAILABLE


def build_lock(kind: str, host: str, org: str, key: str) -> str:
    """One builder per (state or base) per host: another host builds its own copy."""
    return f"{kind}:{host}:{org}:{key}"


def build_lock_key(kind: str, host: str, org: str, key: str) -> str:
    """The Redis key of ``build_lock``, for those who only look (the orphan sweep)."""
    return f"sqlrs:lock:{build_lock(kind, host, org, key)}"


class LockSet:
    """The locks a job holds; its heartbeat thread extends all of them."""

    def __init__(self, redis: Redis, ttl_seconds: float):
        self.redis = redis
        self.ttl = ttl_seconds
        self._held: list[Lock] = []

    @contextmanager
    def hold(self, name: str, *, cancelled: Callable[[], bool]) -> Iterator[None]:
        lock = self.redis.lock(f"sqlrs:lock:{name}", timeout=self.ttl, thread_local=False)
        while not self._try(lock):
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

    def _try(self, lock: Lock) -> bool:
        """One attempt of half a second. A Redis that is away is waited for, as long as a lock
        lives (``ttl``): `up` restarts its private one within a second or two."""
        unreachable_since = None
        while True:
            try:
                return lock.acquire(blocking=True, blocking_timeout=0.5)
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
