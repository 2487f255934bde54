"""The events stream of a job: every event from the first, then live until the job ends.

NDJSON by default; Server-Sent Events with ``Accept: text/event-stream``, where each event's
``id`` is its sequence number so ``Last-Event-ID`` resumes exactly after it.

A stream reads the Control DB when woken: whoever appends a job's events publishes a wake-up
on Redis (``control.wakeups``), and one subscription per API process (:class:`Wakeups`) passes
it to the streams of that job. Without Redis a stream polls every ``POLL_SECONDS``; with it, it
still reads every ``WOKEN_POLL_SECONDS`` in case a wake-up was lost.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from quart import Response, current_app, request

from appliance.api import serializers
from appliance.api.app import call, context
from appliance.control import wakeups
from appliance.orchestrator.events import events_after, job_is_terminal

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
WOKEN_POLL_SECONDS = 2.0
KEEPALIVE_SECONDS = 15.0
RESUBSCRIBE_SECONDS = 1.0


class Wakeups:
    """One Redis pattern subscription for every stream of this process; a stream waits on its
    job's wake-ups with :meth:`waiter`."""

    def __init__(self, connect: Callable[[], Any]):
        self._connect = connect
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task | None = None
        self.subscribed = False

    @contextlib.contextmanager
    def waiter(self, job_id: str):
        """An event set by the next wake-up of ``job_id`` from now on (register before reading,
        so a wake-up between the read and the wait is not missed)."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self.subscribed = False
            self._task = loop.create_task(self._listen())
        woken = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(woken)
        try:
            yield woken
        finally:
            waiting = self._waiters.get(job_id)
            if waiting is not None:
                waiting.discard(woken)
                if not waiting:
                    del self._waiters[job_id]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen(self) -> None:
        while True:
            try:
                async with self._connect() as client, client.pubsub() as pubsub:
                    await pubsub.psubscribe(wakeups.CHANNEL_PATTERN)
                    self.subscribed = True
                    async for message in pubsub.listen():
                        if message.get("type") == "pmessage":
                            for woken in self._waiters.get(wakeups.job_of(message["channel"]), ()):
                                woken.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down or restarting: streams poll meanwhile
                log.debug("event wake-ups unavailable: %s", exc)
            finally:
                self.subscribed = False
            await asyncio.sleep(RESUBSCRIBE_SECONDS)


def wakeup_hub() -> Wakeups:
    """This app's subscription (made at first use; the app closes it when it stops serving)."""
    hub = current_app.extensions.get("sqlrs-wakeups")
    if hub is None:
        from appliance.connections import async_redis_client
        settings = context().settings
        hub = current_app.extensions["sqlrs-wakeups"] = Wakeups(lambda: async_redis_client(settings))
    return hub


async def event_stream(job_id: str) -> Response:
    sse = "text/event-stream" in request.headers.get("Accept", "")
    after = -1
    if sse and request.headers.get("Last-Event-ID", "").isdigit():
        after = int(request.headers["Last-Event-ID"])
    hub = wakeup_hub()

    async def generate() -> AsyncIterator[bytes]:
        nonlocal after
        idle = 0.0
        while True:
            with hub.waiter(job_id) as woken:
                terminal = await call(job_is_terminal, job_id)  # read before the events: none is missed
                batch = await call(events_after, job_id, after)
                for ev in batch:
                    after = ev.seq
                    body = json.dumps(serializers.event(ev))
                    yield (f"id: {ev.seq}\nevent: {ev.type}\ndata: {body}\n\n" if sse else body + "\n").encode()
                if batch:
                    idle = 0.0
                    continue
                if terminal:
                    return
                loop = asyncio.get_running_loop()
                since = loop.time()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), WOKEN_POLL_SECONDS if hub.subscribed else POLL_SECONDS)
                idle += loop.time() - since
                if sse and idle >= KEEPALIVE_SECONDS:
                    idle = 0.0
                    yield b": keep-alive\n\n"

    response = Response(generate(), content_type="text/event-stream" if sse else "application/x-ndjson",
                        headers={"Cache-Control": "no-cache"})
    response.timeout = None
    return response
