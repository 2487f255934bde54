"""The audit log through the API: who did what, to which object, with which outcome."""
from __future__ import annotations

import json

from appliance.api.auth.tokens import issue_token

JOB = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "select 1"]}


def robot(org: str, role: str) -> tuple[str, dict[str, str]]:
    row, secret = issue_token(org, name=f"{org}-{role}", role=role, ttl_seconds=3600, created_by="test")
    return f"token:{row.token_id}", {"Authorization": f"Bearer {secret}"}


async def audit_rows(client, headers, **params) -> list[dict]:
    response = await client.get("/v1/audit", headers=headers, query_string=params)
    assert response.status_code == 200, await response.get_json()
    return await response.get_json()


async def test_a_submitted_job_is_recorded_with_its_submitter_and_id(client):
    actor, member = robot("default", "member")
    job_id = (await (await client.post("/v1/prepare-jobs", json=JOB, headers=member)).get_json())["job_id"]
    rows = await audit_rows(client, client.auth, action="prepare.submitted")
    assert [(r["actor"], r["object_kind"], r["object_id"], r["outcome"], r["org"]) for r in rows] == \
        [(actor, "job", job_id, "ok", "default")]


async def test_a_denied_action_is_recorded_as_denied(client):
    actor, viewer = robot("default", "viewer")
    await client.delete(f"/v1/states/{'5' * 64}", headers=viewer)
    rows = await audit_rows(client, client.auth, action="state.deleted")
    assert [(r["actor"], r["outcome"], r["details"]) for r in rows] == [(actor, "denied", {"error": "permission_denied"})]


async def test_failed_logins_are_recorded_without_the_presented_token(client):
    await client.get("/v1/prepare-jobs", headers={"Authorization": "Bearer sqlrs_not-a-real-token"})
    rows = await audit_rows(client, client.auth, action="auth.failed")
    assert rows and rows[-1]["actor"] == "anonymous" and rows[-1]["outcome"] == "denied"
    assert "sqlrs_not-a-real-token" not in json.dumps(rows)


async def test_token_creation_and_revocation_are_recorded_but_never_the_secret(client):
    actor, admin = robot("default", "admin")
    created = await (await client.post("/v1/orgs/default/tokens", json={"name": "ci"}, headers=admin)).get_json()
    await client.delete(f"/v1/orgs/default/tokens/{created['token_id']}", headers=admin)
    rows = await audit_rows(client, admin)
    assert [(r["action"], r["object_id"]) for r in rows if r["action"].startswith("token.")] == \
        [("token.created", created["token_id"]), ("token.revoked", created["token_id"])]
    assert created["token"] not in json.dumps(rows)


async def test_an_org_admin_sees_only_its_org_and_a_viewer_none(client):
    _, other_admin = robot("other", "admin")
    _, member = robot("default", "member")
    await client.post("/v1/prepare-jobs", json=JOB, headers=member)
    assert await audit_rows(client, other_admin, action="prepare.submitted") == []
    assert (await client.get("/v1/audit", headers=robot("default", "viewer")[1])).status_code == 403


async def test_the_audit_log_exports_as_json_lines(client):
    _, member = robot("default", "member")
    await client.post("/v1/prepare-jobs", json=JOB, headers=member)
    response = await client.get("/v1/audit", headers={**client.auth, "Accept": "application/x-ndjson"})
    lines = (await response.get_data(as_text=True)).splitlines()
    assert response.mimetype == "application/x-ndjson" and any(json.loads(x)["action"] == "prepare.submitted"
                                                                for x in lines)


async def test_a_share_refused_for_a_body_that_is_not_an_object_is_still_recorded(client):
    actor, admin = robot("default", "admin")
    for body in (b'["other"]', b'"other"', b'{"org": ["other"]}'):
        response = await client.post(f"/v1/states/{'5' * 64}/shares", data=body,
                                     headers={**admin, "Content-Type": "application/json"})
        assert response.status_code == 400 and (await response.get_json())["code"] == "invalid_argument"
    rows = await audit_rows(client, client.auth, action="state.shared")
    assert [(r["actor"], r["object_id"], r["outcome"], r["details"]["error"]) for r in rows] == \
        [(actor, "5" * 64, "failed", "invalid_argument")] * 3
