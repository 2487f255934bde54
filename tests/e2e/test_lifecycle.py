"""Instances, states, events and jobs over their whole life, through the real appliance."""
from __future__ import annotations

import json
import subprocess
import uuid

import httpx

from tests.support.polling import wait_until
from tests.support.prepares import THREE_STEPS, executes
from tests.support.psql import psql


def test_an_instance_past_its_ttl_is_reaped_and_its_port_freed(appliance, scripts):
    status = appliance.prepare(["-f", "schema.sql"], scripts, instance={"ttl_seconds": 2})
    instance_id, dsn = status["result"]["instance_id"], status["result"]["dsn"]
    assert psql(dsn, "select 1").returncode == 0
    reaped = wait_until(lambda: (i := appliance.get(f"/v1/instances/{instance_id}").json())["status"] == "expired"
                        and i, 30, "the instance to expire")
    assert reaped["port"] is None and reaped.get("dsn") is None
    assert psql(dsn, "select 1").returncode != 0


def test_extending_an_instance_moves_its_expiry(appliance, scripts):
    status = appliance.prepare(["-f", "schema.sql"], scripts, instance={"ttl_seconds": 60})
    ref = status["result"]["instance_id"]
    before = appliance.get(f"/v1/instances/{ref}").json()["expires_at"]
    extended = appliance.post(f"/v1/instances/{ref}/extend", json={"ttl_seconds": 3600})
    assert extended.status_code == 200
    assert extended.json()["expires_at"] > before


def test_an_instance_can_be_found_by_its_name(appliance, scripts):
    status = appliance.prepare(["-f", "schema.sql"], scripts, instance={"name": "review-42"})
    found = appliance.get("/v1/instances/review-42")
    assert found.status_code == 200 and found.json()["instance_id"] == status["result"]["instance_id"]


def test_deleting_a_state_with_children_is_blocked_without_recurse(appliance, scripts):
    status = appliance.prepare(THREE_STEPS, scripts)
    root = executes(status)[0]["output_state_id"]
    blocked = appliance.delete(f"/v1/states/{root}")
    assert blocked.status_code == 409
    assert blocked.json()["outcome"] == "blocked" and blocked.json()["root"]["blocked"] == "has_descendants"
    assert appliance.get(f"/v1/states/{root}").status_code == 200


def test_a_recursive_dry_run_lists_the_subtree_and_deletes_nothing(appliance, scripts):
    status = appliance.prepare(THREE_STEPS, scripts)
    root = executes(status)[0]["output_state_id"]
    answer = appliance.delete(f"/v1/states/{root}", params={"recurse": "true", "dry_run": "true"}).json()
    assert answer["outcome"] == "would_delete"
    node, depth = answer["root"], 0
    while node["children"]:
        node = next(c for c in node["children"] if c["kind"] == "state") if any(
            c["kind"] == "state" for c in node["children"]) else node["children"][0]
        depth += 1
    assert depth >= 3  # two more states and the instance
    assert appliance.get(f"/v1/states/{root}").status_code == 200


def test_a_recursive_delete_removes_states_and_instances_and_their_disk(appliance, scripts):
    status = appliance.prepare(THREE_STEPS, scripts)
    ids = [t["output_state_id"] for t in executes(status)]
    answer = appliance.delete(f"/v1/states/{ids[0]}", params={"recurse": "true", "force": "true"})
    assert answer.status_code == 200 and answer.json()["outcome"] == "deleted"
    for state_id in ids:
        assert appliance.get(f"/v1/states/{state_id}").status_code == 404
        assert not (appliance.data_dir / "store" / "orgs" / "default" / "states" / state_id).exists()
    assert appliance.get(f"/v1/instances/{status['result']['instance_id']}").status_code == 404


def test_plan_only_reports_cached_steps_and_creates_nothing(appliance, scripts):
    appliance.prepare(["-f", "schema.sql"], scripts)
    states_before = len(appliance.get("/v1/states").json())
    plan = appliance.prepare(THREE_STEPS, scripts, plan_only=True)
    assert plan["status"] == "succeeded" and plan["result"] is None
    assert [t["cached"] for t in executes(plan)] == [True, False, False]
    assert len(appliance.get("/v1/states").json()) == states_before


def test_the_event_stream_resumes_after_the_last_event_id(appliance, scripts):
    status = appliance.prepare(["-f", "schema.sql"], scripts)
    url = f"/v1/prepare-jobs/{status['job_id']}/events"
    full = appliance.get(url, headers={"Accept": "text/event-stream"}).text
    blocks = [b for b in full.strip().split("\n\n") if b.startswith("id:")]
    assert len(blocks) >= 5
    resumed = appliance.get(url, headers={"Accept": "text/event-stream", "Last-Event-ID": "2"}).text
    resumed_ids = [int(b.split("\n")[0][3:]) for b in resumed.strip().split("\n\n") if b.startswith("id:")]
    assert resumed_ids == list(range(3, len(blocks)))
    last = json.loads(blocks[-1].split("data: ", 1)[1])
    assert last["type"] == "result"


def test_a_running_job_can_be_cancelled(appliance, scripts):
    (scripts / "slow.sql").write_text("select pg_sleep(60);\n")
    job_id = appliance.submit(["-f", "schema.sql", "-f", "slow.sql"], scripts).json()["job_id"]
    appliance.first_event(job_id, lambda e: (e.get("message") or "").startswith("psql: -f slow.sql"))
    assert appliance.post(f"/v1/prepare-jobs/{job_id}/cancel").status_code == 202
    status = appliance.wait(job_id, timeout=30)
    assert status["status"] == "cancelled"
    assert status["error"]["code"] == "cancelled"
    assert appliance.post(f"/v1/prepare-jobs/{job_id}/cancel").status_code == 200


def test_lists_stream_as_ndjson_when_asked(appliance, scripts):
    appliance.prepare(["-f", "schema.sql"], scripts)
    response = appliance.get("/v1/states", headers={"Accept": "application/x-ndjson"})
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert all("state_id" in json.loads(line) for line in response.text.splitlines())


def test_a_project_ref_prepares_from_a_server_side_git_repository(appliance, scripts):
    repo = appliance.data_dir.parent / "projects" / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "schema.sql").write_text((scripts / "schema.sql").read_text())
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], check=True)
    subprocess.run([*git, "tag", "v1"], check=True)
    (repo / "schema.sql").write_text("create table other (id int);\n")
    subprocess.run([*git, "commit", "-qam", "v2"], check=True)
    assert appliance.post("/v1/projects", json={"name": "shop", "repo_path": str(repo)}).status_code == 201
    body = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-f", "schema.sql"],
            "source": {"project": "shop", "ref": "v1"}}
    status = appliance.wait(appliance.post("/v1/prepare-jobs", json=body).json()["job_id"])
    assert status["status"] == "succeeded", status["error"]
    assert psql(status["result"]["dsn"], "select count(*) from items").stdout.strip() == "0"
    missing = appliance.post("/v1/prepare-jobs", json={**body, "source": {"project": "shop", "ref": "nope"}})
    assert missing.status_code == 400 and missing.json()["code"] == "invalid_argument"


def test_openapi_describes_the_prepare_request_without_auth(appliance):
    spec = httpx.get(appliance.url + "/openapi.json").json()
    assert "/v1/prepare-jobs" in spec["paths"]
    schema = json.dumps(spec)
    assert "psql_args" in schema and "PrepareJobStatus" in schema


def test_an_instance_whose_postgres_died_is_started_again_on_its_port(appliance, scripts):
    status = appliance.prepare(["-f", "schema.sql"], scripts)
    dsn, instance_id = status["result"]["dsn"], status["result"]["instance_id"]
    volume = next(p for p in (appliance.data_dir / "store" / "orgs").glob("*/volumes/*")
                  if (p / "pgdata" / "postmaster.pid").exists() and
                  appliance.get(f"/v1/instances/{instance_id}").json()["port"] == int(
                      (p / "pgdata" / "postmaster.pid").read_text().splitlines()[3]))
    postmaster = int((volume / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
    subprocess.run(["kill", "-9", str(postmaster)], check=True)
    wait_until(lambda: psql(dsn, "select count(*) from items").returncode == 0, 60, "the instance to answer again")
    assert appliance.get(f"/v1/instances/{instance_id}").json()["status"] == "active"


def test_every_finished_job_leaves_a_report_and_its_step_logs_as_artifacts(appliance, scripts):
    (scripts / "noisy.sql").write_text("select 'hello from a step' as greeting;\n")
    status = appliance.prepare(["-f", "schema.sql", "-f", "noisy.sql"], scripts)
    job_id = status["job_id"]
    names = {a["name"] for a in wait_until(lambda: appliance.get(f"/v1/prepare-jobs/{job_id}/artifacts").json(),
                                           30, "the job's artifacts")}
    assert {"report.json", "logs/execute-1.log"} <= names
    report = appliance.get(f"/v1/prepare-jobs/{job_id}/artifacts/report.json").json()
    assert report["status"] == "succeeded"
    assert [t["decision"] for t in report["tasks"] if t["type"] == "state_execute"] == ["built", "built"]
    log = appliance.get(f"/v1/prepare-jobs/{job_id}/artifacts/logs/execute-1.log").text
    assert "hello from a step" in log
    assert status["result"]["dsn"].split("@")[0].split(":")[-1] not in log


def test_an_orgs_jobs_beyond_its_running_quota_wait_their_turn_and_then_run(appliance, scripts):
    assert appliance.post("/v1/orgs/default/quota", json={}).status_code == 405  # PUT only
    assert appliance.put("/v1/orgs/default/quota", json={"max_running_jobs": 1}).status_code == 200
    try:
        marker = uuid.uuid4().hex
        ids = [appliance.submit(["-c", f"select pg_sleep(2); -- {marker} {n}"], scripts).json()["job_id"]
               for n in range(2)]
        first, second = sorted((appliance.wait(i) for i in ids), key=lambda s: s["started_at"])
        assert first["status"] == second["status"] == "succeeded"
        assert second["started_at"] >= first["finished_at"]  # never both running
        messages = [e.get("message") for e in appliance.events(second["job_id"])]
        assert "waiting: the org is at its running-jobs quota" in messages
    finally:
        appliance.put("/v1/orgs/default/quota", json={"max_running_jobs": None})
