"""`/metrics` after a known workload on a fresh appliance: the counters match what was done."""
from __future__ import annotations

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.appliance import appliance_on
from tests.support.prepares import executes


@pytest.fixture(scope="module")
def appliance(request):
    yield from appliance_on(request, "btrfs")


def scrape(appliance) -> dict[tuple[str, tuple], float]:
    text = appliance.get("/metrics").text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_the_metrics_count_exactly_the_work_done(appliance, tmp_path):
    marker = uuid.uuid4().hex
    steps = ["-c", f"create table a (i int); -- {marker}", "-c", "insert into a values (1)"]
    built = appliance.prepare(steps, tmp_path)
    hit = appliance.prepare(steps, tmp_path)
    failed = appliance.prepare(steps[:2] + ["-c", "select * from no_such_table"], tmp_path)
    assert (built["status"], hit["status"], failed["status"]) == ("succeeded", "succeeded", "failed")

    m = scrape(appliance)

    assert m[("sqlrs_prepare_jobs_finished_total", (("status", "succeeded"),))] == 2
    assert m[("sqlrs_prepare_jobs_finished_total", (("status", "failed"),))] == 1
    assert m[("sqlrs_steps_total", (("outcome", "built"),))] == 2
    assert m[("sqlrs_steps_total", (("outcome", "cache_hit"),))] == 3  # two of the hit, one of the failed job
    assert m[("sqlrs_cache_hit_ratio", ())] == pytest.approx(3 / 5)
    assert m[("sqlrs_job_errors_total", (("code", "step_failed"),))] == 1
    for kind, count in (("build", 2), ("cache_hit", 3), ("bind", 2)):
        assert m[("sqlrs_task_duration_seconds_count", (("kind", kind),))] == count
        assert m[("sqlrs_task_duration_seconds_bucket", (("kind", kind), ("le", "+Inf")))] == count
    assert m[("sqlrs_task_duration_seconds_sum", (("kind", "bind"),))] > 0
    assert m[("sqlrs_snapshot_duration_seconds_count", ())] == 2
    states = appliance.get("/v1/states").json()
    assert m[("sqlrs_org_state_bytes", (("org", "default"),))] == sum(s["size_bytes"] for s in states)
    assert m[("sqlrs_org_instances", (("org", "default"),))] == 2
    assert m[("sqlrs_org_running_jobs", (("org", "default"),))] == 0
    assert all(value == 0 for (name, _), value in m.items() if name == "sqlrs_queue_jobs")
    assert executes(hit)[0]["output_state_id"] == executes(built)[0]["output_state_id"]


COUNTED = ("_total", "_bucket", "_count", "_sum")
PER_PROCESS = "sqlrs_http_"  # this API process's requests: they rise with every scrape


def cluster_counters(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if key[0].endswith(COUNTED) and not key[0].startswith(PER_PROCESS)}


def test_deleting_every_job_lowers_no_counter(appliance, tmp_path):
    appliance.prepare(["-c", f"create table b (i int); -- {uuid.uuid4().hex}"], tmp_path)
    before = cluster_counters(scrape(appliance))
    for job in appliance.get("/v1/prepare-jobs").json():
        assert appliance.delete(f"/v1/prepare-jobs/{job['job_id']}").status_code == 200
    after = cluster_counters(scrape(appliance))
    assert appliance.get("/v1/prepare-jobs").json() == []
    assert before and after == before


def test_the_operations_series_show_a_live_host_its_workers_and_the_requests_served(appliance, tmp_path):
    status = appliance.prepare(["-c", f"select 1; -- {uuid.uuid4().hex}"], tmp_path)
    assert status["status"] == "succeeded"
    m = scrape(appliance)
    (host,) = {dict(labels)["host"] for name, labels in m if name == "sqlrs_host_up"}
    assert m[("sqlrs_host_up", (("host", host),))] == 1
    assert m[("sqlrs_host_heartbeat_age_seconds", (("host", host),))] < 30
    assert 0 < m[("sqlrs_store_free_bytes", (("host", host),))] <= m[("sqlrs_store_size_bytes", (("host", host),))]
    workers = sum(value for (name, labels), value in m.items() if name == "sqlrs_workers" and dict(labels)["host"] == host)
    assert workers == 2 and m[("sqlrs_redis_up", ())] == 1  # the two workers `up` starts
    assert m[("sqlrs_queue_jobs", (("host", host),))] == 0
    created = (("method", "POST"), ("route", "/v1/prepare-jobs"), ("status", "201"))
    assert m[("sqlrs_http_requests_total", created)] >= 1
    assert m[("sqlrs_http_request_duration_seconds_count", created[:2])] >= 1
