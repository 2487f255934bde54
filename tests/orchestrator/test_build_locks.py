"""A job's build lock while Redis restarts (a real redis-server, started late): the job waits for
it as long as a lock lives, then gives up with the queue's error, which fails the job as
``queue_unavailable``."""
from __future__ import annotations

import threading

import pytest
from redis import Redis

from appliance.orchestrator.locks import LockSet
from appliance.orchestrator.queue import UNAVAILABLE
from tests.faults.rig import RedisServer


def never_cancelled() -> bool:
    return False


@pytest.fixture
def late_redis():
    server = RedisServer()  # not listening yet
    yield server
    server.kill()


def test_a_build_lock_waits_for_a_redis_that_is_restarting(late_redis):
    starter = threading.Timer(1.0, late_redis.start)
    starter.start()
    locks = LockSet(Redis.from_url(late_redis.url, socket_connect_timeout=1), ttl_seconds=30)
    with locks.hold("state:h:org:key", cancelled=never_cancelled):
        assert Redis.from_url(late_redis.url).exists("sqlrs:lock:state:h:org:key")
    starter.join()


def test_a_build_lock_gives_up_once_redis_stayed_away_longer_than_a_lock_lives(late_redis):
    locks = LockSet(Redis.from_url(late_redis.url, socket_connect_timeout=1), ttl_seconds=1)
    with pytest.raises(UNAVAILABLE):
        with locks.hold("state:h:org:key", cancelled=never_cancelled):
            pass
