"""`--log-format json`: every line the appliance and its workers log is one JSON object, and a
job's lines carry its id (and org, task) so one filter follows it across processes."""
from __future__ import annotations

import json
import uuid

import pytest

from tests.support.appliance import appliance_on


@pytest.fixture(scope="module")
def appliance(request):
    yield from appliance_on(request, "btrfs", {"SQLRS_LOG_FORMAT": "json", "SQLRS_LOG_LEVEL": "DEBUG"})


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_every_log_line_is_json_and_a_jobs_lines_carry_its_ids(appliance, tmp_path):
    status = appliance.prepare(["-c", f"create table t (i int); -- {uuid.uuid4().hex}"], tmp_path)
    assert status["status"] == "succeeded", status["error"]
    response = appliance.get(f"/v1/prepare-jobs/{status['job_id']}", headers={"X-Request-ID": "trace-0123456789"})
    assert response.headers["X-Request-ID"] == "trace-0123456789"

    workers = [line for path in (appliance.data_dir / "logs").glob("worker-*.log")
               for line in json_lines(path.read_text())]  # json.loads fails on any line that is not JSON
    supervisor = json_lines(appliance.log_text())

    job_lines = [line for line in workers if line.get("job_id") == status["job_id"]]
    assert job_lines and all(line["org"] == "default" for line in job_lines)
    assert any(line.get("task_id", "").startswith("execute-") for line in job_lines)
    assert {"ts", "level", "logger", "message"} <= set(job_lines[0])
    assert supervisor and all({"ts", "level", "logger", "message"} <= set(line) for line in supervisor)


def test_each_request_leaves_one_access_line_with_its_id_route_status_and_duration(appliance):
    response = appliance.get("/v1/instances/no-such-instance", headers={"X-Request-ID": "access-0123456789"})
    assert response.status_code == 404

    lines = [line for line in json_lines(appliance.log_text())
             if line["logger"] == "sqlrs.access" and line.get("request_id") == "access-0123456789"]
    assert len(lines) == 1
    (line,) = lines
    assert (line["method"], line["route"], line["path"]) == ("GET", "/v1/instances/<ref>", "/v1/instances/no-such-instance")
    assert (line["status"], line["code"], line["org"]) == (404, "not_found", "default")
    assert line["duration_ms"] > 0 and line["remote_addr"] == "127.0.0.1"


def test_rq_lines_about_a_queue_entry_carry_its_id_as_a_field(appliance, tmp_path):
    status = appliance.prepare(["-c", f"select 1; -- {uuid.uuid4().hex}"], tmp_path)
    assert status["status"] == "succeeded", status["error"]
    workers = [line for path in (appliance.data_dir / "logs").glob("worker-*.log")
               for line in json_lines(path.read_text())]
    done = [line for line in workers if line["logger"] == "rq.worker" and "Job OK" in line["message"]]
    assert done and all(line.get("rq_job") and line["rq_job"] in line["message"] for line in done)
