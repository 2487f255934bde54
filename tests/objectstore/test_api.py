"""The export/import and artifact routes, in-process on SQLite and PostgreSQL Control DBs."""
from __future__ import annotations

import json

from appliance.api.auth.tokens import issue_token
from appliance.control.models import PrepareJob, State
from appliance.job_artifacts import write_job_artifacts
from tests.support.states import ORG, make_state
from tests.support.transfers import transferred


def other_org_auth() -> dict[str, str]:
    _, secret = issue_token("other", name="other", role="admin", ttl_seconds=3600, created_by="test")
    return {"Authorization": f"Bearer {secret}"}


async def test_export_is_queued_and_its_transfer_ends_with_the_manifest(client, ctx):
    make_state(ctx)
    response = await client.post("/v1/states/s1/export", headers=client.auth)
    queued = await response.get_json()
    assert response.status_code == 202 and queued["status"] == "queued" and queued["kind"] == "export"
    assert response.headers["Location"] == queued["status_url"] == f"/v1/transfers/{queued['transfer_id']}"
    assert not ctx.objects.exists(f"{ORG}/states/s1/manifest.json")  # the API streams nothing itself
    done = await transferred(client, ctx, response)
    manifest = done["manifest"]
    assert done["status"] == "succeeded" and done["bytes_done"] == done["bytes_total"] > 0
    assert (manifest["state_id"], manifest["driver"], manifest["format"], manifest["compression"]) == (
        "s1", "copy", "tar", "zstd")


async def test_exporting_an_exported_state_answers_200_with_its_finished_transfer(client, ctx):
    make_state(ctx)
    first = await transferred(client, ctx, await client.post("/v1/states/s1/export", headers=client.auth))
    again = await client.post("/v1/states/s1/export", headers=client.auth)
    assert again.status_code == 200 and (await again.get_json())["transfer_id"] == first["transfer_id"]


async def test_an_export_asked_twice_while_queued_is_one_transfer(client, ctx):
    make_state(ctx)
    first = await (await client.post("/v1/states/s1/export", headers=client.auth)).get_json()
    second = await client.post("/v1/states/s1/export", headers=client.auth)
    assert second.status_code == 202 and (await second.get_json())["transfer_id"] == first["transfer_id"]


async def test_importing_a_removed_exported_state_restores_it(client, ctx):
    make_state(ctx)
    await transferred(client, ctx, await client.post("/v1/states/s1/export", headers=client.auth))
    State.delete().where(State.state_id == "s1").execute()
    ctx.store.destroy_state(ORG, "s1")
    response = await client.post("/v1/states/import", json={"state_id": "s1"}, headers=client.auth)
    assert response.status_code == 202
    done = await transferred(client, ctx, response)
    assert (done["status"], done["kind"], done["state_id"]) == ("succeeded", "import", "s1")
    assert (ctx.store.state_path(ORG, "s1") / "data").read_text() == "hello"
    assert (await client.get("/v1/states/s1", headers=client.auth)).status_code == 200


async def test_importing_a_state_that_is_present_answers_200(client, ctx):
    make_state(ctx)
    await transferred(client, ctx, await client.post("/v1/states/s1/export", headers=client.auth))
    response = await client.post("/v1/states/import", json={"state_id": "s1"}, headers=client.auth)
    assert response.status_code == 200 and (await response.get_json())["status"] == "succeeded"


async def test_exporting_an_unknown_state_answers_404(client):
    response = await client.post("/v1/states/s9/export", headers=client.auth)
    assert response.status_code == 404 and (await response.get_json())["code"] == "not_found"


async def test_importing_a_state_without_a_manifest_answers_404(client):
    response = await client.post("/v1/states/import", json={"state_id": "s9"}, headers=client.auth)
    assert response.status_code == 404


async def test_an_import_request_with_unknown_fields_is_invalid(client):
    response = await client.post("/v1/states/import", json={"state_id": "s1", "x": 1}, headers=client.auth)
    assert response.status_code == 400


def finished_job(ctx) -> None:
    from appliance.orchestrator.events import append_event
    PrepareJob.create(job_id="a" * 32, org=ORG, status="succeeded", prepare_kind="psql", image_id="postgres:15",
                      request_json="{}", instance_ttl_seconds=60)
    append_event("a" * 32, "log", task_id="plan", message="planned 2 steps")
    write_job_artifacts(ctx, "a" * 32)


async def test_a_jobs_artifacts_are_listed(client, ctx):
    finished_job(ctx)
    response = await client.get(f"/v1/prepare-jobs/{'a' * 32}/artifacts", headers=client.auth)
    assert [a["name"] for a in await response.get_json()] == ["logs/plan.log", "report.json"]


async def test_the_report_is_downloaded(client, ctx):
    finished_job(ctx)
    response = await client.get(f"/v1/prepare-jobs/{'a' * 32}/artifacts/report.json", headers=client.auth)
    assert response.status_code == 200 and json.loads(await response.get_data())["status"] == "succeeded"


async def test_a_log_in_a_subdirectory_is_downloaded(client, ctx):
    finished_job(ctx)
    log = await client.get(f"/v1/prepare-jobs/{'a' * 32}/artifacts/logs/plan.log", headers=client.auth)
    assert log.status_code == 200 and (await log.get_data()).decode().endswith("planned 2 steps\n")


async def test_another_orgs_job_artifacts_answer_404(client, ctx):
    finished_job(ctx)
    auth = other_org_auth()
    listing = await client.get(f"/v1/prepare-jobs/{'a' * 32}/artifacts", headers=auth)
    download = await client.get(f"/v1/prepare-jobs/{'a' * 32}/artifacts/report.json", headers=auth)
    assert (listing.status_code, download.status_code) == (404, 404)


async def test_another_orgs_state_cannot_be_exported(client, ctx):
    make_state(ctx)
    response = await client.post("/v1/states/s1/export", headers=other_org_auth())
    assert response.status_code == 404
