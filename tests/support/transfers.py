"""Exports and imports: without a worker, the transfers the API queued run in-process the way a
worker of the host runs them (``jobs.transfer.run_transfer``); with a real appliance, a transfer
is polled to its end (``finished``)."""
from __future__ import annotations

import time

from appliance.control.models import Transfer
from appliance.transfer.jobs import run_transfer


def run_queued_transfers(ctx) -> list[str]:
    """Run every queued transfer of ``ctx``'s host, oldest first; their ids."""
    ran = []
    for transfer in Transfer.select().where((Transfer.status == "queued") & (Transfer.host == ctx.host)) \
            .order_by(Transfer.created_at):
        run_transfer(ctx, transfer.transfer_id)
        ran.append(transfer.transfer_id)
    return ran


async def transferred(client, ctx, response) -> dict:
    """The transfer a POST answered, run to its end when it was queued; its final entry."""
    body = await response.get_json()
    assert response.status_code in (200, 202), body
    if response.status_code == 202:
        run_queued_transfers(ctx)
        polled = await client.get(body["status_url"], headers=client.auth)
        body = await polled.get_json()
        assert polled.status_code == 200, body
    return body


def finished(app, response, timeout: float = 300) -> tuple[dict, list[int]]:
    """Poll the transfer a POST to a real appliance answered until it is over: its last entry,
    and the distinct ``bytes_done`` values seen while it ran."""
    assert response.status_code in (200, 202), response.text
    transfer, seen = response.json(), []
    deadline = time.monotonic() + timeout
    while transfer["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"transfer still {transfer['status']}: {transfer}"
        time.sleep(0.1)
        transfer = app.get(transfer["status_url"]).json()
        if transfer["status"] == "running" and transfer["bytes_done"] not in seen:
            seen.append(transfer["bytes_done"])
    return transfer, seen
