"""The Python client (``sqlrs_client``) against a real appliance: each method drives its route,
and every failure arrives as an exception carrying the API's code."""
from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import uuid

import httpx
import pytest

from sqlrs_client import ApiError, AsyncClient, Client, JobFailed, psql_request
from tests.support.psql import psql


class SeenRequests(httpx.HTTPTransport):
    """The real transport, keeping the method and path of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"{request.method} {request.url.path}")
        return super().handle_request(request)


@pytest.fixture
def client(appliance):
    with Client(appliance.url, appliance.token) as client:
        yield client


def count_items(dsn: str) -> str:
    return psql(dsn, "select count(*) from items").stdout.strip()


def test_a_psql_prepare_answers_with_an_instance_whose_dsn_works(client, scripts):
    result = client.prepare_psql(["-f", "schema.sql", "-f", "data.sql"], cwd=scripts)
    assert count_items(result["dsn"]) == "100"
    assert client.instance(result["instance_id"])["status"] == "active"
    assert result["instance_id"] in [i["instance_id"] for i in client.instances()]
    assert client.state(result["state_id"])["state_id"] == result["state_id"]


def test_a_repeated_prepare_uploads_nothing_and_builds_nothing(appliance, scripts):
    transport = SeenRequests()
    with Client(appliance.url, appliance.token, transport=transport) as client:
        client.prepare_psql(["-f", "schema.sql", "-f", "data.sql"], cwd=scripts)
        assert transport.seen.count("POST /v1/sources") == 1  # the first time: the appliance lacked it
        transport.seen.clear()
        again = client.submit(psql_request(["-f", "schema.sql", "-f", "data.sql"], cwd=scripts))
        job = client.wait(again["job_id"])
    assert "POST /v1/sources" not in transport.seen
    assert [t["cached"] for t in job["tasks"] if t["type"] == "state_execute"] == [True, True]


def test_following_a_job_ends_with_its_final_status(client, scripts):
    accepted = client.submit(psql_request(["-f", "schema.sql"], cwd=scripts))
    seen = [progress.job["status"] for progress in client.follow(accepted["job_id"])]
    assert seen[-1] == "succeeded"
    assert client.job(accepted["job_id"])["status"] == "succeeded"


def test_a_failed_job_raises_job_failed_with_the_step_error(client, scripts):
    (scripts / "broken.sql").write_text("select * from missing_table;\n")
    with pytest.raises(JobFailed) as failed:
        client.prepare_psql(["-f", "schema.sql", "-f", "broken.sql"], cwd=scripts)
    assert failed.value.code == "step_failed" and "missing_table" in failed.value.message
    assert failed.value.job["status"] == "failed"


def test_an_unknown_instance_is_an_api_error_with_the_code_not_found(client):
    with pytest.raises(ApiError) as error:
        client.instance("0" * 32)
    assert (error.value.status, error.value.code) == (404, "not_found")


def test_an_instance_is_extended_then_deleted(client, scripts):
    result = client.prepare_psql(["-c", "create table t (id int)"], cwd=scripts, ttl_seconds=60)
    before = dt.datetime.fromisoformat(client.instance(result["instance_id"])["expires_at"].replace("Z", "+00:00"))
    after = dt.datetime.fromisoformat(client.extend(result["instance_id"], 3600)["expires_at"].replace("Z", "+00:00"))
    assert after - before > dt.timedelta(minutes=50)
    assert client.delete_instance(result["instance_id"])["outcome"] == "deleted"
    assert result["instance_id"] not in [i["instance_id"] for i in client.instances()]


def test_a_state_with_an_instance_is_not_deleted_and_a_dry_run_deletes_nothing(client, scripts):
    result = client.prepare_psql(["-f", "schema.sql"], cwd=scripts)
    assert client.delete_state(result["state_id"])["outcome"] == "blocked"
    assert client.delete_state(result["state_id"], recurse=True, force=True, dry_run=True)["outcome"] == "would_delete"
    assert client.instance(result["instance_id"])["status"] == "active"


def test_cancelling_a_finished_job_says_it_had_already_finished(client, scripts):
    accepted = client.submit(psql_request(["-f", "schema.sql"], cwd=scripts))
    client.wait(accepted["job_id"])
    cancelled = client.cancel(accepted["job_id"])
    assert not cancelled.requested and cancelled.job["status"] == "succeeded"


def test_explain_says_a_prepared_request_is_a_hit(client, scripts):
    client.prepare_psql(["-f", "schema.sql"], cwd=scripts)
    assert client.explain(psql_request(["-f", "schema.sql"], cwd=scripts))["decision"] == "hit"


def test_the_lists_and_the_appliance_reads(client, scripts):
    result = client.prepare_psql(["-f", "schema.sql"], cwd=scripts)
    job_ids = [job["job_id"] for job in client.jobs()]
    assert job_ids and all(t["job_id"] in job_ids for t in client.tasks(at_most=5))
    assert client.health()["ok"] and client.readiness()["ok"]
    org = client.whoami()["org"]
    assert client.usage(org)["usage"]["instances"] >= 1
    assert client.cache_status()["state_count"] >= 1
    assert result["state_id"] in [s["state_id"] for s in client.states()]


def test_the_async_client_prepares_and_deletes_as_the_sync_one_does(appliance, scripts):
    async def scenario():
        async with AsyncClient(appliance.url, appliance.token) as client:
            result = await client.prepare_psql(["-f", "schema.sql", "-f", "data.sql"], cwd=scripts)
            listed = [i["instance_id"] for i in await client.instances()]
            deleted = await client.delete_instance(result["instance_id"])
            return result, listed, deleted

    result, listed, deleted = asyncio.run(scenario())
    assert result["instance_id"] in listed and deleted["outcome"] == "deleted"


def test_the_async_client_raises_the_same_errors(appliance):
    async def missing():
        async with AsyncClient(appliance.url, appliance.token) as client:
            await client.state("0" * 32)

    with pytest.raises(ApiError) as error:
        asyncio.run(missing())
    assert error.value.code == "not_found"


def test_a_token_is_created_listed_used_and_revoked(client, appliance):
    org = client.whoami()["org"]
    created = client.create_token(org, "ci robot", role="viewer", ttl_seconds=600)
    assert created["token"] and created["role"] == "viewer"
    assert created["token_id"] in [t["token_id"] for t in client.tokens(org)]
    assert all("token" not in t for t in client.tokens(org))  # the secret is never listed
    with Client(appliance.url, created["token"]) as robot:
        assert robot.whoami()["role"] == "viewer"
        with pytest.raises(ApiError) as refused:
            robot.create_token(org, "escalation")
        assert refused.value.status == 403
    assert client.revoke_token(org, created["token_id"])["revoked_at"] is not None
    with Client(appliance.url, created["token"]) as revoked, pytest.raises(ApiError) as error:
        revoked.whoami()
    assert error.value.code == "unauthenticated"


def test_a_quota_change_shows_in_the_org_s_usage(client):
    org = client.whoami()["org"]
    try:
        assert client.set_quota(org, max_instances=37)["limits"]["max_instances"] == 37
        assert client.usage(org)["limits"]["max_instances"] == 37
    finally:
        client.set_quota(org, max_instances=None)
    assert client.usage(org)["limits"]["max_instances"] != 37


def test_a_state_is_shared_with_another_org_and_unshared(client, scripts):
    result = client.prepare_psql(["-f", "schema.sql"], cwd=scripts)
    share = client.share(result["state_id"], "partners")
    assert (share["state_id"], share["org"]) == (result["state_id"], "partners")
    assert [s["org"] for s in client.shares(result["state_id"])] == ["partners"]
    assert client.unshare(result["state_id"], "partners")["revoked"] is True
    assert client.shares(result["state_id"]) == []


def test_a_job_s_artifacts_are_listed_and_read(client, scripts):
    accepted = client.submit(psql_request(["-f", "schema.sql"], cwd=scripts))
    client.wait(accepted["job_id"])
    names = [a["name"] for a in client.artifacts(accepted["job_id"])]
    assert names
    assert all(isinstance(client.artifact(accepted["job_id"], name), bytes) for name in names)


def test_projects_and_the_audit_log(client, appliance, tmp_path):
    name = f"client-{uuid.uuid4().hex[:8]}"
    repo = appliance.data_dir.parent / "projects" / name  # under the appliance's project root
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    created = client.create_project(name, str(repo))
    assert created["name"] == name and name in [p["name"] for p in client.projects()]
    assert any(e["action"].startswith("project") for e in client.audit(at_most=1000))


def test_a_finished_job_is_deleted_and_the_instance_it_made_lives_on(client, scripts):
    accepted = client.submit(psql_request(["-f", "schema.sql"], cwd=scripts))
    job = client.wait(accepted["job_id"])
    assert client.delete_job(accepted["job_id"])["outcome"] == "deleted"
    with pytest.raises(ApiError) as gone:
        client.job(accepted["job_id"])
    assert gone.value.code == "not_found"
    assert client.instance(job["result"]["instance_id"])["status"] == "active"
    client.delete_instance(job["result"]["instance_id"])


def test_a_state_is_exported_and_imported_back(client, scripts):
    result = client.prepare_psql(["-f", "schema.sql"], cwd=scripts)
    exported = client.wait_transfer(client.export_state(result["state_id"])["transfer_id"], poll_seconds=0.1)
    manifest = exported["manifest"]
    assert exported["status"] == "succeeded" and exported["bytes_done"] == exported["bytes_total"] > 0
    assert manifest is not None and manifest["state_id"] == result["state_id"] and manifest["stream_bytes"] > 0
    again = client.import_state(result["state_id"])  # the appliance has it: nothing to do
    assert (again["status"], again["kind"], again["state_id"]) == ("succeeded", "import", result["state_id"])


def test_the_async_client_follows_a_job_through_its_events_to_the_end(appliance, scripts):
    async def scenario():
        async with AsyncClient(appliance.url, appliance.token) as client:
            accepted = await client.submit(psql_request(["-f", "schema.sql", "-f", "data.sql"], cwd=scripts))
            statuses = [progress.job["status"] async for progress in client.follow(accepted["job_id"])]
            events = [event async for event in client.events(accepted["job_id"])]
            cancelled = await client.cancel(accepted["job_id"])
            job = await client.job(accepted["job_id"])
            await client.delete_instance(job["result"]["instance_id"])
            return statuses, events, cancelled, job

    statuses, events, cancelled, job = asyncio.run(scenario())
    assert statuses[-1] == "succeeded" and job["status"] == "succeeded"
    assert any(e.get("type") == "status" and e.get("status") == "succeeded" for e in events)
    assert not cancelled.requested
