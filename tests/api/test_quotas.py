"""Quotas saturated one by one: each refusal names its limit, and a freed slot is usable again."""
from __future__ import annotations

import datetime as dt

from appliance.api.auth.tokens import issue_token
from appliance.control import quotas
from appliance.control.models import Instance, PrepareJob, State, utcnow
from tests.support.api import assert_rejected


def job(sql: str = "select 1", **fields) -> dict:
    return {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", sql], **fields}


async def set_quota(client, **limits):
    response = await client.put("/v1/orgs/default/quota", json=limits, headers=client.auth)
    assert response.status_code == 200, await response.get_json()
    return await response.get_json()


async def refusal(response, status: int, limit: str) -> dict:
    body = await response.get_json()
    assert response.status_code == status and body["code"] == "quota_exceeded", body
    assert body["details"]["limit"] == limit
    return body


async def test_queued_jobs_stop_at_the_limit_and_a_cancelled_one_frees_its_slot(client):
    await set_quota(client, max_queued_jobs=2)
    first = await (await client.post("/v1/prepare-jobs", json=job("select 1"), headers=client.auth)).get_json()
    await client.post("/v1/prepare-jobs", json=job("select 2"), headers=client.auth)
    body = await refusal(await client.post("/v1/prepare-jobs", json=job("select 3"), headers=client.auth),
                         429, "max_queued_jobs")
    assert (body["details"]["limit_value"], body["details"]["usage"]) == (2, 2)
    assert PrepareJob.select().count() == 2  # the refused one left no trace
    await client.post(f"/v1/prepare-jobs/{first['job_id']}/cancel", headers=client.auth)
    assert (await client.post("/v1/prepare-jobs", json=job("select 3"), headers=client.auth)).status_code == 201


async def test_live_instances_stop_at_the_limit_and_a_deleted_one_frees_its_slot(client, ctx):
    await set_quota(client, max_instances=1)
    Instance.create(instance_id="ab" * 16, org="default", state_id="s" * 64, image_id="x", volume_id="cd" * 16,
                    host_id=ctx.host, status="active", host="127.0.0.1", port=6500, password="p",
                    expires_at=utcnow() + dt.timedelta(hours=1))
    await refusal(await client.post("/v1/prepare-jobs", json=job(), headers=client.auth), 429, "max_instances")
    Instance.update(status="expired").execute()
    assert (await client.post("/v1/prepare-jobs", json=job(), headers=client.auth)).status_code == 201


async def test_pooled_clones_count_against_nobody(client, ctx):
    await set_quota(client, max_instances=1)
    Instance.create(instance_id="ab" * 16, org="default", state_id="s" * 64, image_id="x", volume_id="cd" * 16,
                    host_id=ctx.host, status="pooled", host="127.0.0.1", port=6500, password="p",
                    expires_at=utcnow() + dt.timedelta(days=1))
    assert (await client.post("/v1/prepare-jobs", json=job(), headers=client.auth)).status_code == 201


async def test_a_ttl_above_the_orgs_limit_is_forbidden_not_throttled(client):
    await set_quota(client, max_ttl_seconds=600)
    response = await client.post("/v1/prepare-jobs", json=job(instance={"ttl_seconds": 601}), headers=client.auth)
    body = await refusal(response, 403, "max_ttl_seconds")
    assert body["details"]["limit_value"] == 600
    assert (await client.post("/v1/prepare-jobs", json=job(instance={"ttl_seconds": 600}),
                              headers=client.auth)).status_code == 201


async def test_state_bytes_stop_at_the_limit(client, ctx):
    await set_quota(client, max_state_bytes=1000)
    State.create(org="default", state_id="1" * 64, image_id="i", prepare_kind="psql", task_hash="t",
                 size_bytes=1000, host=ctx.host)
    await refusal(await client.post("/v1/prepare-jobs", json=job(), headers=client.auth), 429, "max_state_bytes")
    State.delete().execute()
    assert (await client.post("/v1/prepare-jobs", json=job(), headers=client.auth)).status_code == 201


async def test_running_jobs_beyond_the_limit_wait_their_turn(ctx):
    quotas.set_limits("default", {"max_running_jobs": 1}, "test")
    PrepareJob.create(job_id="1" * 32, org="default", status="running", prepare_kind="psql", image_id="i",
                      request_json="{}", instance_ttl_seconds=60)
    assert not quotas.may_start(ctx.settings, "default")
    PrepareJob.update(status="succeeded").execute()
    assert quotas.may_start(ctx.settings, "default")


async def test_usage_shows_limits_and_counts_and_only_operators_change_limits(client):
    await set_quota(client, max_instances=7)
    await client.post("/v1/prepare-jobs", json=job(), headers=client.auth)
    _, secret = issue_token("default", name="admin", role="admin", ttl_seconds=3600, created_by="test")
    org_admin = {"Authorization": f"Bearer {secret}"}
    usage = await (await client.get("/v1/orgs/default/usage", headers=org_admin)).get_json()
    assert usage["limits"]["max_instances"] == 7 and usage["usage"]["queued_jobs"] == 1
    raise_own = await client.put("/v1/orgs/default/quota", json={"max_instances": 1000}, headers=org_admin)
    await assert_rejected(raise_own, 403, "permission_denied")
    audit = await (await client.get("/v1/audit", headers=client.auth, query_string={"action": "quota.changed"})).get_json()
    assert audit and audit[-1]["details"] == {"max_instances": 7}


async def test_an_extension_past_the_orgs_ttl_limit_is_forbidden(client, ctx):
    await set_quota(client, max_ttl_seconds=600)
    Instance.create(instance_id="ab" * 16, org="default", state_id="s" * 64, image_id="x", volume_id="cd" * 16,
                    host_id=ctx.host, status="active", host="127.0.0.1", port=6500, password="p",
                    expires_at=utcnow() + dt.timedelta(hours=1))
    response = await client.post(f"/v1/instances/{'ab' * 16}/extend", json={"ttl_seconds": 601}, headers=client.auth)
    await refusal(response, 403, "max_ttl_seconds")
    assert (await client.post(f"/v1/instances/{'ab' * 16}/extend", json={"ttl_seconds": 600},
                              headers=client.auth)).status_code == 200
