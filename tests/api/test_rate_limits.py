"""Rate limits on a real Redis: a principal's and an org's buckets run dry, answer 429 with
Retry-After, and refill."""
from __future__ import annotations

import asyncio

import pytest

from appliance.api.app import create_app
from appliance.api.auth.tokens import issue_token


def robot(org: str, name: str) -> dict[str, str]:
    _, secret = issue_token(org, name=name, role="viewer", ttl_seconds=3600, created_by="test")
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def limited(ctx, redis):
    ctx.settings = ctx.settings.model_copy(update={"rate_limit_per_principal": 2.0, "rate_limit_principal_burst": 3,
                                                   "rate_limit_per_org": 2.0, "rate_limit_org_burst": 5})
    return create_app(ctx).test_client()


async def test_a_principal_past_its_burst_gets_429_with_retry_after_and_later_gets_through(limited):
    me = robot("default", "me")
    statuses = [(await limited.get("/v1/whoami", headers=me)).status_code for _ in range(3)]
    refused = await limited.get("/v1/whoami", headers=me)
    body = await refused.get_json()
    assert statuses == [200, 200, 200] and refused.status_code == 429
    assert body["code"] == "rate_limited" and body["details"]["scope"] == "principal"
    assert refused.headers["Retry-After"] == "1"
    await asyncio.sleep(0.6)  # two tokens a second: one is back
    assert (await limited.get("/v1/whoami", headers=me)).status_code == 200


async def test_an_orgs_principals_share_its_bucket_and_other_orgs_do_not(limited):
    a, b, outsider = robot("default", "a"), robot("default", "b"), robot("other", "c")
    statuses = [(await limited.get("/v1/whoami", headers=who)).status_code for who in (a, a, a, b, b)]
    refused = await limited.get("/v1/whoami", headers=b)
    assert statuses == [200] * 5 and refused.status_code == 429
    assert (await refused.get_json())["details"]["scope"] == "org"
    assert (await limited.get("/v1/whoami", headers=outsider)).status_code == 200


async def test_a_refused_request_changes_nothing(limited):
    from appliance.control.models import PrepareJob
    _, secret = issue_token("default", name="m", role="member", ttl_seconds=3600, created_by="test")
    member = {"Authorization": f"Bearer {secret}"}
    body = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "select 1"]}
    for _ in range(3):
        await limited.get("/v1/whoami", headers=member)
    assert (await limited.post("/v1/prepare-jobs", json=body, headers=member)).status_code == 429
    assert PrepareJob.select().count() == 0
