"""The events stream of a job: every event from the first, then live until the job ends.

NDJSON by default; Server-Sent Events with ``Accept: text/event-stream``, where each event's
``id`` is its sequence number so ``Last-Event-ID`` resumes exactly after it.
"""
from __future__ import annotations

import asyncio
import json

from quart import Response, request

from appliance.api import serializers
from appliance.api.app import call
from appliance.orchestrator.events import events_after, job_is_terminal

POLL_SECONDS = 0.1
KEEPALIVE_SECONDS = 15.0


async def event_stream(job_id: str) -> Response:
    sse = "text/event-stream" in request.headers.get("Accept", "")
    after = -1
    if sse and request.headers.get("Last-Event-ID", "").isdigit():
        after = int(request.headers["Last-Event-ID"])

    async def generate():
        nonlocal after
        idle = 0.0
        while True:
            terminal = await call(job_is_terminal, job_id)  # read before the events: none is missed
            batch = await call(events_after, job_id, after)
            for ev in batch:
                after = ev.seq
                body = json.dumps(serializers.event(ev))
                yield (f"id: {ev.seq}\nevent: {ev.type}\ndata: {body}\n\n" if sse else body + "\n").encode()
            if batch:
                idle = 0.0
            elif terminal:
                return
            else:
                await asyncio.sleep(POLL_SECONDS)
                idle += POLL_SECONDS
                if sse and idle >= KEEPALIVE_SECONDS:
                    idle = 0.0
                    yield b": keep-alive\n\n"

    response = Response(generate(), content_type="text/event-stream" if sse else "application/x-ndjson",
                        headers={"Cache-Control": "no-cache"})
    response.timeout = None
    return response
