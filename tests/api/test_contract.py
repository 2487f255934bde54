"""The v1 contract seen from a client, in-process."""
from __future__ import annotations


async def test_health_needs_no_token(client):
    response = await client.get("/v1/health")
    assert response.status_code == 200 and (await response.get_json())["ok"] is True


async def test_readiness_names_the_store_driver_and_warns_when_clones_cost_o_size(client, ctx):
    from appliance.storage.image import filesystem_type
    body = await (await client.get("/v1/ready", headers=client.auth)).get_json()
    assert body["ok"] is True and set(body["checks"]) == {"control_db", "redis", "store", "runtime"}
    assert body["store_driver"] == "copy" and body["store_reason"] == "copy: storage_backend is copy"
    copy_is_o_size = filesystem_type(ctx.store.root) not in ("btrfs", "xfs")
    assert any("O(size)" in warning for warning in body["warnings"]) == copy_is_o_size


async def test_a_plan_only_job_finishes_at_once_and_lists_its_tasks(client):
    body = {"prepare_kind": "psql", "image_id": "postgres:15", "plan_only": True,
            "psql_args": ["-c", "create table a (i int)", "-c", "insert into a values (1)"]}
    accepted = await client.post("/v1/prepare-jobs", json=body, headers=client.auth)
    assert accepted.status_code == 201
    job = await accepted.get_json()
    assert accepted.headers["Location"] == job["status_url"] == f"/v1/prepare-jobs/{job['job_id']}"
    status = await (await client.get(job["status_url"], headers=client.auth)).get_json()
    assert status["status"] == "succeeded" and status["result"] is None
    assert [t["task_id"] for t in status["tasks"]] == ["plan", "resolve-image", "execute-0", "execute-1"]
    assert status["resolved_image_id"].startswith("postgres:15@sha256:")


async def test_uploading_the_same_bundle_twice_gives_the_same_source_id(client):
    from tests.support.tarballs import make_tarball
    data = make_tarball([("a.sql", b"select 1;\n", {})])
    first = await client.post("/v1/sources", data=data, headers=client.auth)
    second = await client.post("/v1/sources", data=data, headers=client.auth)
    assert (first.status_code, second.status_code) == (201, 200)
    assert (await first.get_json())["source_id"] == (await second.get_json())["source_id"]


async def test_the_job_list_filters_by_id_prefix_and_status(client):
    body = {"prepare_kind": "psql", "image_id": "postgres:15", "plan_only": True, "psql_args": ["-c", "select 1"]}
    job = await (await client.post("/v1/prepare-jobs", json=body, headers=client.auth)).get_json()
    by_prefix = await (await client.get(f"/v1/prepare-jobs?job={job['job_id'][:6]}", headers=client.auth)).get_json()
    assert [j["job_id"] for j in by_prefix] == [job["job_id"]]
    running = await (await client.get("/v1/prepare-jobs?status=running", headers=client.auth)).get_json()
    assert running == []


async def test_metrics_count_jobs_but_not_the_steps_of_a_plan(client):
    body = {"prepare_kind": "psql", "image_id": "postgres:15", "plan_only": True, "psql_args": ["-c", "select 1"]}
    await client.post("/v1/prepare-jobs", json=body, headers=client.auth)
    text = (await (await client.get("/metrics", headers=client.auth)).get_data()).decode()
    assert 'sqlrs_prepare_jobs_finished_total{status="succeeded"} 1.0' in text
    assert 'sqlrs_steps_total{outcome="built"} 0.0' in text and 'sqlrs_steps_total{outcome="cache_hit"} 0.0' in text
    assert "sqlrs_states 0.0" in text


async def test_metrics_need_a_token(client):
    assert (await client.get("/metrics")).status_code == 401


async def test_cache_status_reports_capacity_and_no_pressure_on_an_empty_store(client):
    body = await (await client.get("/v1/cache/status", headers=client.auth)).get_json()
    assert body["usage_bytes"] == 0 and body["state_count"] == 0 and body["last_eviction"] is None
    assert body["effective_max_bytes"] > 0 and body["store_total_bytes"] >= body["store_free_bytes"] > 0


async def test_cache_explain_answers_without_creating_a_job(client):
    from appliance.control.models import PrepareJob
    body = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "select 1"]}
    answer = await client.post("/v1/cache/explain/prepare", json=body, headers=client.auth)
    assert answer.status_code == 200
    explained = await answer.get_json()
    assert (explained["decision"], explained["reason_code"]) == ("miss", "no_matching_state")
    assert explained["steps"][0]["task_id"] == "execute-0"
    assert PrepareJob.select().count() == 0


async def test_cache_explain_rejects_bad_input_like_a_prepare_does(client):
    body = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-h", "x", "-c", "select 1"]}
    response = await client.post("/v1/cache/explain/prepare", json=body, headers=client.auth)
    assert response.status_code == 400 and (await response.get_json())["code"] == "invalid_argument"
