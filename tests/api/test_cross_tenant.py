"""The cross-tenant matrix: org B's admin, member and viewer against every route that names one
of org A's objects. Every answer is a 404 (or the same 400 a made-up id gets), the listings
show none of A's objects, and nothing of A's changed."""
from __future__ import annotations

import json

import pytest

from appliance.api.auth.tokens import issue_token
from appliance.control.models import (
    ApiToken,
    Instance,
    PrepareJob,
    Project,
    SourceBundle,
    State,
    StateShare,
    Task,
    Transfer,
    utcnow,
)
from appliance.job_artifacts import write_job_artifacts
from appliance.orchestrator.events import append_event

ORG_A, ORG_B = "default", "intruders"
JOB, STATE, INSTANCE, SOURCE, TRANSFER = "a" * 32, "5" * 64, "b" * 32, "c" * 64, "7" * 32


@pytest.fixture
def org_a(ctx, client):
    """One object of each kind in org A: a finished job with events, tasks and artifacts, a state
    on disk, an instance row, a project, an uploaded bundle and a robot token."""
    PrepareJob.create(job_id=JOB, org=ORG_A, status="succeeded", prepare_kind="psql", image_id="postgres:15",
                      request_json="{}", instance_ttl_seconds=60, result_instance_id=INSTANCE)
    Task.create(job=JOB, task_id="plan", position=0, type="plan", status="succeeded")
    append_event(JOB, "log", task_id="plan", message="planned")
    write_job_artifacts(ctx, JOB)
    volume = ctx.store.create_volume(ORG_A, "v1")
    (volume / "data").write_text("a's data")
    ctx.store.commit_state(ORG_A, "v1", STATE)
    ctx.store.destroy_volume(ORG_A, "v1")
    State.create(org=ORG_A, state_id=STATE, image_id="postgres:15", prepare_kind="psql", task_hash="h",
                 host=ctx.host, exported_at=utcnow())
    Instance.create(instance_id=INSTANCE, org=ORG_A, state_id=STATE, image_id="postgres:15", volume_id="d" * 32,
                    host_id=ctx.host, status="active", host="127.0.0.1", port=6500, password="a-secret",
                    expires_at=utcnow())
    Project.create(org=ORG_A, name="shop", repo_path="/srv/git/shop")
    StateShare.create(org=ORG_A, state_id=STATE, grantee="friends", granted_by="test")
    SourceBundle.create(org=ORG_A, source_id=SOURCE, size_bytes=1)
    Transfer.create(transfer_id=TRANSFER, org=ORG_A, kind="export", state_id=STATE, host=ctx.host, status="running")
    token, _ = issue_token(ORG_A, name="a-robot", role="member", ttl_seconds=3600, created_by="test")
    return {"token_id": token.token_id}


def snapshot() -> str:
    """Everything of org A's, to compare before and after."""
    rows = {model.__name__: sorted(json.dumps(r, default=str, sort_keys=True)
                                   for r in model.select().where(model.org == ORG_A).dicts())
            for model in (PrepareJob, State, Instance, Project, SourceBundle, ApiToken, Transfer)}
    return json.dumps(rows, sort_keys=True)


def intruder(role: str) -> dict[str, str]:
    _, secret = issue_token(ORG_B, name=f"b-{role}", role=role, ttl_seconds=3600, created_by="test")
    return {"Authorization": f"Bearer {secret}"}


def targeted(token_id: str) -> list[tuple[str, str, dict]]:
    job, state, instance = f"/v1/prepare-jobs/{JOB}", f"/v1/states/{STATE}", f"/v1/instances/{INSTANCE}"
    return [
        ("GET", job, {}), ("DELETE", job, {"query_string": {"force": "true"}}), ("POST", f"{job}/cancel", {}),
        ("GET", f"{job}/events", {}), ("GET", f"{job}/artifacts", {}), ("GET", f"{job}/artifacts/report.json", {}),
        ("GET", f"/v1/prepare-jobs/{JOB[:12]}", {}),
        ("GET", state, {}), ("GET", f"/v1/states/{STATE[:12]}", {}),
        ("DELETE", state, {"query_string": {"recurse": "true", "force": "true"}}),
        ("POST", f"{state}/export", {}), ("POST", "/v1/states/import", {"json": {"state_id": STATE}}),
        ("GET", f"/v1/transfers/{TRANSFER}", {}), ("GET", f"/v1/transfers/{TRANSFER[:12]}", {}),
        ("GET", f"{state}/shares", {}), ("POST", f"{state}/shares", {"json": {"org": ORG_B}}),
        ("DELETE", f"{state}/shares/{ORG_B}", {}),
        ("GET", instance, {}), ("DELETE", instance, {"query_string": {"force": "true"}}),
        ("POST", f"{instance}/extend", {"json": {"ttl_seconds": 60}}),
        ("GET", f"/v1/orgs/{ORG_A}/tokens", {}), ("POST", f"/v1/orgs/{ORG_A}/tokens", {"json": {"name": "x"}}),
        ("DELETE", f"/v1/orgs/{ORG_A}/tokens/{token_id}", {}),
        ("GET", f"/v1/orgs/{ORG_A}/usage", {}), ("GET", f"/v1/orgs/{ORG_A}/shares", {}),
        ("PUT", f"/v1/orgs/{ORG_A}/quota", {"json": {"max_instances": 1}}),
    ]


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
async def test_another_orgs_objects_answer_404_to_every_role_and_nothing_changes(client, org_a, role):
    before, headers = snapshot(), intruder(role)
    for method, path, kwargs in targeted(org_a["token_id"]):
        response = await client.open(path, method=method, headers=headers, **kwargs)
        body = await response.get_json()
        # 403 is only ever a role denial inside B's own org, before any lookup: it says nothing of A
        assert response.status_code in (404, 403), (method, path, response.status_code, body)
        assert body["code"] == ("not_found" if response.status_code == 404 else "permission_denied")
        if response.status_code == 403:  # a role denial, decided before any lookup
            assert "required_role" in body["details"] and ORG_A not in body["message"], (method, path, body)
    assert snapshot() == before
    assert Transfer.select().where(Transfer.org == ORG_B).count() == 0  # nothing queued for B either


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
async def test_another_orgs_objects_are_in_none_of_the_listings(client, org_a, role):
    headers = intruder(role)
    for path in ("/v1/prepare-jobs", "/v1/states", "/v1/instances", "/v1/tasks", "/v1/projects", f"/v1/orgs/{ORG_B}/shares"):
        listed = await (await client.get(path, headers=headers)).get_data(as_text=True)
        assert all(secret not in listed for secret in (JOB, STATE, INSTANCE, "shop", "a-secret")), path
    status = await (await client.get("/v1/cache/status", headers=headers)).get_json()
    assert status["org_usage_bytes"] == 0 and status["state_count"] == 0 and status["eviction_queue"] == []
    if role == "admin":  # the audit log: B's own rows only
        audit = await (await client.get("/v1/audit", headers=headers)).get_data(as_text=True)
        assert all(secret not in audit for secret in (JOB, STATE, INSTANCE, ORG_A))


async def test_another_orgs_source_and_project_are_like_ones_that_do_not_exist(client, org_a):
    headers = intruder("member")
    for source, made_up in (({"source_id": SOURCE}, {"source_id": "e" * 64}),
                            ({"project": "shop", "ref": "main"}, {"project": "nope", "ref": "main"})):
        bodies = []
        for candidate in (source, made_up):
            response = await client.post("/v1/prepare-jobs", headers=headers, json={
                "prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "select 1"],
                "source": candidate})
            body = await response.get_json()
            bodies.append((response.status_code, body["code"], body["message"].replace(json.dumps(candidate), "")))
        assert bodies[0][:2] == bodies[1][:2] and bodies[0][0] in (400, 404)
    assert PrepareJob.select().where(PrepareJob.org == ORG_B).count() == 0
