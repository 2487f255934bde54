"""What the web console needs of the public API, usable by any client: how a browser signs in,
every org a caller may pick, lists newest first, whose an instance is, the cache's eviction
order, and the shares an org gave."""
from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from quart import Quart

from appliance.api.app import create_app
from appliance.api.auth.tokens import issue_token
from appliance.control.models import Instance, PrepareJob, State, StateShare, utcnow
from tests.support.api import assert_rejected
from tests.support.oidc import AUDIENCE


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def console_oidc(ctx, issuer) -> Quart:
    """The API with the console's OIDC client configured and memberships in a `groups` claim."""
    ctx.settings = ctx.settings.model_copy(update={
        "oidc_issuer": issuer.url, "oidc_audience": AUDIENCE, "oidc_client_id": "sqlrs-console",
        "oidc_groups_claim": "groups"})
    return create_app(ctx).test_client()


def two_orgs(issuer) -> str:
    return issuer.token(org=None, role=None, groups=["sqlrs:default:admin", "sqlrs:team-b:viewer"])


async def test_the_sign_in_config_needs_no_token_and_says_oidc_is_off_by_default(client):
    response = await client.get("/v1/auth/config")
    assert response.status_code == 200 and await response.get_json() == {"oidc": None}


async def test_the_sign_in_config_names_the_issuer_and_the_consoles_public_client(console_oidc, issuer):
    body = await (await console_oidc.get("/v1/auth/config")).get_json()
    assert body["oidc"] == {"issuer": issuer.url, "client_id": "sqlrs-console", "scopes": "openid profile",
                            "audience": AUDIENCE}


async def test_a_person_in_two_orgs_who_names_none_is_told_which_orgs_to_pick_from(console_oidc, issuer):
    response = await console_oidc.get("/v1/whoami", headers=bearer(two_orgs(issuer)))
    await assert_rejected(response, 400, "invalid_argument")
    assert (await response.get_json())["details"]["reason"] == "org_required"
    assert (await response.get_json())["details"]["orgs"] == [{"org": "default", "role": "admin"},
                                                               {"org": "team-b", "role": "viewer"}]


async def test_whoami_lists_every_org_the_caller_may_act_in(console_oidc, issuer):
    me = await (await console_oidc.get("/v1/whoami", headers={**bearer(two_orgs(issuer)), "X-Sqlrs-Org": "team-b"})).get_json()
    assert (me["org"], me["role"]) == ("team-b", "viewer")
    assert me["orgs"] == [{"org": "default", "role": "admin"}, {"org": "team-b", "role": "viewer"}]


async def test_an_operator_token_lists_no_orgs_for_it_may_act_in_any(client):
    me = await (await client.get("/v1/whoami", headers=client.auth)).get_json()
    assert me["global_admin"] is True and me["orgs"] == []


def job(n: int, created_at: dt.datetime, submitted_by: str | None = None) -> str:
    job_id = f"{n:032x}"
    PrepareJob.create(job_id=job_id, org="default", status="succeeded", prepare_kind="psql", image_id="postgres:15",
                      request_json="{}", instance_ttl_seconds=60, created_at=created_at, submitted_by=submitted_by)
    return job_id


async def test_jobs_page_newest_first_with_desc_and_the_cursor_keeps_that_order(client):
    start = utcnow()
    made = [job(n, start + dt.timedelta(seconds=n)) for n in range(5)]
    first = await client.get("/v1/prepare-jobs", headers=client.auth, query_string={"order": "desc", "limit": 3})
    rest = await client.get("/v1/prepare-jobs", headers=client.auth, query_string={
        "order": "desc", "limit": 3, "cursor": first.headers["Sqlrs-Next-Cursor"]})
    got = [j["job_id"] for j in await first.get_json()] + [j["job_id"] for j in await rest.get_json()]
    assert got == made[::-1]


async def test_a_cursor_of_the_oldest_first_order_is_refused_for_newest_first(client):
    start = utcnow()
    for n in range(3):
        job(n, start + dt.timedelta(seconds=n))
    first = await client.get("/v1/prepare-jobs", headers=client.auth, query_string={"limit": 1})
    response = await client.get("/v1/prepare-jobs", headers=client.auth, query_string={
        "order": "desc", "limit": 1, "cursor": first.headers["Sqlrs-Next-Cursor"]})
    await assert_rejected(response, 400, "invalid_cursor")


@pytest.mark.parametrize("forged", [["not a time", "0" * 32], [{"d": "2026-01-01T00:00:00"}, 7]])
async def test_a_cursor_whose_key_does_not_fit_the_columns_is_refused_not_a_server_error(client, forged):
    start = utcnow()
    for n in range(3):
        job(n, start + dt.timedelta(seconds=n))
    first = await client.get("/v1/prepare-jobs", headers=client.auth, query_string={"limit": 1})
    body = json.loads(base64.urlsafe_b64decode(first.headers["Sqlrs-Next-Cursor"] + "=="))
    body["k"] = forged  # the fingerprint is kept: only a key of the wrong kinds
    cursor = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    response = await client.get("/v1/prepare-jobs", headers=client.auth, query_string={"limit": 1, "cursor": cursor})
    await assert_rejected(response, 400, "invalid_cursor")


async def test_an_instance_says_whose_it_is_the_submitter_of_its_job(client):
    row, _ = issue_token("default", name="ci", role="member", ttl_seconds=3600, created_by="test")
    job_id = job(1, utcnow(), submitted_by=f"token:{row.token_id}")
    Instance.create(instance_id="e" * 32, org="default", state_id="5" * 64, image_id="postgres:15", job_id=job_id,
                    volume_id="d" * 32, status="active", host="127.0.0.1", port=6500, password="pw",
                    expires_at=utcnow() + dt.timedelta(hours=1))
    listed = await (await client.get("/v1/instances", headers=client.auth)).get_json()
    one = await (await client.get(f"/v1/instances/{'e' * 32}", headers=client.auth)).get_json()
    assert listed[0]["owner"] == one["owner"] == f"token:{row.token_id}"
    jobs = await (await client.get("/v1/prepare-jobs", headers=client.auth)).get_json()
    assert jobs[0]["submitted_by"] == f"token:{row.token_id}"


async def test_the_cache_lists_the_orgs_leaves_in_eviction_order_with_what_blocks_each(ctx, client):
    old = utcnow() - dt.timedelta(days=2)
    for n, used in ((1, 3), (2, 1), (3, 2)):
        State.create(org="default", state_id=f"{n:064x}", image_id="postgres:15", prepare_kind="psql", task_hash="h",
                     host=ctx.host, created_at=old, last_used_at=old + dt.timedelta(hours=used), size_bytes=n)
    State.create(org="rival", state_id="f" * 64, image_id="postgres:15", prepare_kind="psql", task_hash="h",
                 host=ctx.host, created_at=old, last_used_at=old)
    Instance.create(instance_id="e" * 32, org="default", state_id=f"{3:064x}", image_id="postgres:15",
                    volume_id="d" * 32, host_id=ctx.host, status="active", host="127.0.0.1", port=6500, password="pw",
                    expires_at=utcnow() + dt.timedelta(hours=1))
    queue = (await (await client.get("/v1/cache/status", headers={**client.auth, "X-Sqlrs-Org": "default"}))
             .get_json())["eviction_queue"]
    assert [(e["state_id"][-1], e["blocked_by"]) for e in queue] == [("2", None), ("3", "in_use"), ("1", None)]


async def test_an_org_lists_the_shares_it_gave_across_its_states(client):
    _, secret = issue_token("default", name="viewer", role="viewer", ttl_seconds=3600, created_by="test")
    StateShare.create(org="default", state_id="1" * 64, grantee="team-b", granted_by="token:x")
    StateShare.create(org="default", state_id="2" * 64, grantee="team-c", granted_by="token:x", revoked_at=utcnow())
    StateShare.create(org="rival", state_id="3" * 64, grantee="default", granted_by="token:y")
    listed = await (await client.get("/v1/orgs/default/shares", headers=bearer(secret))).get_json()
    assert [(s["state_id"][0], s["org"]) for s in listed] == [("1", "team-b")]
