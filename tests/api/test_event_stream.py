"""A job's event stream wakes when events are appended (a Redis wake-up from whoever appended
them), instead of waiting for its next read of the Control DB; a wake-up is only a hint."""
from __future__ import annotations

import asyncio
import threading

import pytest

from appliance.api import streams
from appliance.control import wakeups
from appliance.control.db import write_transaction
from appliance.control.models import PrepareJob
from appliance.orchestrator.events import append_event

JOB = "e" * 32
NEVER = 3600.0  # a stream that only polls would wait this long


@pytest.fixture
def running_job(ctx):
    PrepareJob.create(job_id=JOB, org="default", status="running", prepare_kind="psql", image_id="postgres:15",
                      request_json="{}", instance_ttl_seconds=60)
    append_event(JOB, "status", status="running")
    return JOB


@pytest.fixture
def streams_that_only_wake(monkeypatch):
    """Streams whose own reads come once an hour: only a wake-up moves them."""
    monkeypatch.setattr(streams, "POLL_SECONDS", NEVER)
    monkeypatch.setattr(streams, "WOKEN_POLL_SECONDS", NEVER)


async def subscribed(client) -> None:
    """Wait until this app's wake-up subscription is live (a wake-up before it is lost)."""
    for _ in range(500):
        hub = client.app.extensions.get("sqlrs-wakeups")
        if hub is not None and hub.subscribed:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the wake-up subscription never came up")


def finish_in_another_thread(job_id: str) -> threading.Thread:
    """What a worker does when a job ends: the status row, then the last event."""
    def finish():
        with write_transaction(PrepareJob._meta.database):
            PrepareJob.update(status="succeeded").where(PrepareJob.job_id == job_id).execute()
            append_event(job_id, "status", status="succeeded")
    return threading.Thread(target=finish)


async def follow(client, job_id: str) -> list[str]:
    response = await client.get(f"/v1/prepare-jobs/{job_id}/events", headers=client.auth)
    assert response.status_code == 200
    return [line for line in (await response.get_data(as_text=True)).splitlines() if line]


async def test_a_stream_wakes_when_the_job_gets_an_event_in_another_thread(client, running_job,
                                                                           streams_that_only_wake):
    following = asyncio.ensure_future(follow(client, running_job))
    await subscribed(client)
    finisher = finish_in_another_thread(running_job)
    finisher.start()
    lines = await asyncio.wait_for(following, timeout=30)
    finisher.join()
    assert [line for line in lines if '"succeeded"' in line], lines


def subscribed_to_wakeups(redis):
    """A subscription to every job's wake-ups, with those already on their way drained."""
    pubsub = redis.pubsub()
    pubsub.psubscribe(wakeups.CHANNEL_PATTERN)
    pubsub.get_message(timeout=5)  # the subscription's confirmation
    while pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5):
        pass  # the fixture's own event, published by the background thread
    return pubsub


def test_a_wake_up_announced_inside_a_transaction_waits_for_its_commit(ctx, running_job):
    seen: list[str] = []
    pubsub = subscribed_to_wakeups(ctx.redis)

    def next_wakeup():
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
        return wakeups.job_of(message["channel"]) if message else None

    with write_transaction(ctx.db):
        append_event(running_job, "log", message="inside")
        seen.append(next_wakeup())
    seen.append(next_wakeup())
    pubsub.close()
    assert seen == [None, running_job]


def test_a_rolled_back_transaction_announces_nothing(ctx, running_job):
    pubsub = subscribed_to_wakeups(ctx.redis)
    with pytest.raises(RuntimeError), write_transaction(ctx.db):
        append_event(running_job, "log", message="never")
        raise RuntimeError("rolled back")
    with write_transaction(ctx.db):
        pass  # an unrelated commit must not carry the rolled-back wake-up out
    assert pubsub.get_message(ignore_subscribe_messages=True, timeout=1) is None
    pubsub.close()
