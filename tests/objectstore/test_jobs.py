"""Job artifacts: a report and per-task logs written from the Control DB, with retention."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from appliance.control.models import PrepareJob, Task
from appliance.errors import NotFound
from appliance.job_artifacts import (
    DEFAULT_RETENTION,
    list_job_artifacts,
    open_job_artifact,
    sweep_expired_artifacts,
    write_job_artifacts,
)
from appliance.orchestrator.events import append_event
from tests.support.objectstores import Host

UTC = dt.UTC
NOW = dt.datetime(2030, 1, 1, tzinfo=UTC)
T0 = dt.datetime(2029, 12, 31, 23, 0, 0)


@pytest.fixture
def host(tmp_path, objects):
    from appliance.control.db import close_database
    from appliance.shell import Runner
    from appliance.storage.copy import CopyDriver
    host = Host("host-a", tmp_path / "a", tmp_path / "store", CopyDriver(Runner()), objects)
    with host.active():
        yield host
    close_database(host.db)


def finished_job(job_id: str = "j1", org: str = "acme") -> PrepareJob:
    job = PrepareJob.create(job_id=job_id, org=org, status="failed", prepare_kind="psql", image_id="postgres:15",
                            request_json="{}", instance_ttl_seconds=60, created_at=T0, started_at=T0,
                            finished_at=T0 + dt.timedelta(seconds=7),
                            error_json=json.dumps({"code": "step_failed", "message": "boom"}))
    Task.create(job=job, task_id="plan", position=0, type="plan", status="succeeded",
                started_at=T0, finished_at=T0 + dt.timedelta(seconds=1))
    Task.create(job=job, task_id="execute-0", position=1, type="state_execute", status="succeeded", cached=True)
    Task.create(job=job, task_id="execute-1", position=2, type="state_execute", status="failed", cached=False,
                started_at=T0 + dt.timedelta(seconds=1), finished_at=T0 + dt.timedelta(seconds=7))
    append_event(job_id, "log", task_id="execute-1", message="psql: insert")
    append_event(job_id, "log", task_id="execute-1", message="ERROR: boom")
    append_event(job_id, "status", status="failed")
    return job


def read(host: Host, key: str) -> bytes:
    with host.ctx.objects.open(key) as reader:
        return reader.read()


def test_the_report_holds_status_timings_and_the_cache_decision_of_every_step(host):
    finished_job()
    write_job_artifacts(host.ctx, "j1", now=NOW)
    report = json.loads(read(host, "acme/jobs/j1/report.json"))
    assert (report["status"], report["duration_seconds"], report["error"]["code"]) == ("failed", 7.0, "step_failed")
    assert [(t["task_id"], t["decision"], t["duration_seconds"]) for t in report["tasks"]] == [
        ("plan", None, 1.0), ("execute-0", "cached", None), ("execute-1", "built", 6.0)]


def test_a_task_log_holds_its_log_messages_in_order(host):
    finished_job()
    write_job_artifacts(host.ctx, "j1", now=NOW)
    lines = read(host, "acme/jobs/j1/logs/execute-1.log").decode().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["psql: insert", "ERROR: boom"]


def test_artifacts_are_listed_with_size_and_retention(host):
    finished_job()
    write_job_artifacts(host.ctx, "j1", now=NOW)
    listed = list_job_artifacts(host.ctx, "acme", "j1")
    assert [a["name"] for a in listed] == ["logs/execute-1.log", "report.json"]
    assert all(a["retain_until"] == "2030-01-31T00:00:00.000Z" and a["size_bytes"] > 0 for a in listed)
    assert DEFAULT_RETENTION == dt.timedelta(days=30)


def test_the_sweeper_deletes_expired_artifacts_only(host):
    finished_job("j1")
    finished_job("j2")
    write_job_artifacts(host.ctx, "j1", now=NOW, retain_seconds=60)
    write_job_artifacts(host.ctx, "j2", now=NOW, retain_seconds=3600)
    host.ctx.objects.put_bytes("acme/states/s1/manifest.json", b"{}")
    assert sweep_expired_artifacts(host.ctx, NOW + dt.timedelta(minutes=5)) == 2
    assert [i.key for i in host.ctx.objects.list("acme/")] == [
        "acme/jobs/j2/logs/execute-1.log", "acme/jobs/j2/report.json", "acme/states/s1/manifest.json"]


def test_an_artifact_name_that_escapes_the_job_is_not_found(host):
    finished_job()
    write_job_artifacts(host.ctx, "j1", now=NOW)
    for name in ("../j1/report.json", "missing.json", ".meta/report.json"):
        with pytest.raises(NotFound):
            open_job_artifact(host.ctx, "acme", "j1", name)

