"""Exports and imports as jobs, in-process: the API queues a ``Transfer`` and answers it, the
worker's entry point runs it (here without a worker process, as the worker would), the
reconciler fails one whose worker died, and every transfer is its org's alone."""
from __future__ import annotations

import asyncio
import datetime as dt
import json

from appliance.api.auth.tokens import issue_token
from appliance.control.models import State, Transfer, utcnow
from appliance.orchestrator.reconciler import reconcile
from appliance.transfer.jobs import run_transfer
from appliance.transfer.streams import manifest_key
from tests.support.states import ORG, make_state
from tests.support.transfers import run_queued_transfers, transferred


def other_org_auth() -> dict[str, str]:
    _, secret = issue_token("other", name="other", role="admin", ttl_seconds=3600, created_by="test")
    return {"Authorization": f"Bearer {secret}"}


async def test_another_orgs_transfer_answers_404(client, ctx):
    make_state(ctx)
    queued = await (await client.post("/v1/states/s1/export", headers=client.auth)).get_json()
    for ref in (queued["transfer_id"], queued["transfer_id"][:12]):
        response = await client.get(f"/v1/transfers/{ref}", headers=other_org_auth())
        assert response.status_code == 404 and (await response.get_json())["code"] == "not_found"
    made_up = await client.get(f"/v1/transfers/{'0' * 32}", headers=client.auth)
    assert made_up.status_code == 404


async def test_a_transfer_whose_worker_died_is_failed_by_the_reconciler_and_can_be_asked_again(client, ctx):
    make_state(ctx)
    queued = await (await client.post("/v1/states/s1/export", headers=client.auth)).get_json()
    stale = utcnow() - dt.timedelta(seconds=ctx.settings.job_lost_after_seconds + 5)
    # what a SIGKILLed worker leaves: claimed, some bytes streamed, then silence
    Transfer.update(status="running", started_at=stale, heartbeat_at=stale, worker="host:1", bytes_done=4096).where(
        Transfer.transfer_id == queued["transfer_id"]).execute()

    assert queued["transfer_id"] in reconcile(ctx).lost_transfers

    failed = await (await client.get(queued["status_url"], headers=client.auth)).get_json()
    assert (failed["status"], failed["error"]["code"]) == ("failed", "worker_lost") and failed["finished_at"]
    assert run_transfer(ctx, queued["transfer_id"]) is None  # a late worker does not run a failed transfer
    again = await client.post("/v1/states/s1/export", headers=client.auth)
    assert again.status_code == 202 and (await again.get_json())["transfer_id"] != queued["transfer_id"]
    assert (await transferred(client, ctx, again))["status"] == "succeeded"


async def test_a_running_transfer_with_a_fresh_heartbeat_is_left_alone(client, ctx):
    make_state(ctx)
    queued = await (await client.post("/v1/states/s1/export", headers=client.auth)).get_json()
    Transfer.update(status="running", heartbeat_at=utcnow(), worker="host:1").where(
        Transfer.transfer_id == queued["transfer_id"]).execute()
    assert reconcile(ctx).lost_transfers == []
    assert Transfer.get_by_id(queued["transfer_id"]).status == "running"


async def test_an_import_whose_manifest_was_altered_is_refused_at_once_and_nothing_is_queued(client, ctx):
    make_state(ctx)
    await transferred(client, ctx, await client.post("/v1/states/s1/export", headers=client.auth))
    key = manifest_key(ORG, "s1")
    with ctx.objects.open(key) as reader:
        body = json.loads(reader.read())
    ctx.objects.put_bytes(key, json.dumps({**body, "image_id": "postgres:16"}).encode())
    ctx.store.destroy_state(ORG, "s1")
    State.delete().where(State.state_id == "s1").execute()
    before = Transfer.select().count()

    refused = await client.post("/v1/states/import", json={"state_id": "s1"}, headers=client.auth)

    assert refused.status_code == 400 and (await refused.get_json())["code"] == "bad_signature"
    assert Transfer.select().count() == before and run_queued_transfers(ctx) == []


async def test_a_failed_export_records_the_error_code_and_message(client, ctx):
    make_state(ctx)
    queued = await (await client.post("/v1/states/s1/export", headers=client.auth)).get_json()
    ctx.store.destroy_state(ORG, "s1")  # the state vanished from the store after it was queued
    run_queued_transfers(ctx)
    failed = await (await client.get(queued["status_url"], headers=client.auth)).get_json()
    assert failed["status"] == "failed" and failed["error"]["code"] and failed["error"]["message"]
    assert not ctx.objects.exists(manifest_key(ORG, "s1"))


async def test_two_exports_asked_at_once_queue_one_transfer(client, ctx):
    make_state(ctx)
    first, second = await asyncio.gather(*(client.post("/v1/states/s1/export", headers=client.auth) for _ in range(2)))
    answers = [await first.get_json(), await second.get_json()]
    assert (first.status_code, second.status_code) == (202, 202)
    assert answers[0]["transfer_id"] == answers[1]["transfer_id"]
    assert Transfer.select().where(Transfer.kind == "export").count() == 1
