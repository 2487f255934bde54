"""The log scrape: the whole prepare flow at DEBUG level, through the Nomad runtime (a Nomad
ACL token) with artifacts and state streams in S3 (an S3 secret key), by a robot token; then
no secret value — DSN passwords, API tokens, the S3 key, the Nomad token, the private Redis's
password — may appear in any log line, job event, audit row or artifact."""
from __future__ import annotations

import uuid

import pytest

from tests.support.appliance import appliance_on
from tests.support.prepares import THREE_STEPS, executes
from tests.support.s3 import s3_env
from tests.support.transfers import finished


@pytest.fixture(scope="module")
def appliance(request, s3_server):
    env = {**s3_env(s3_server, f"secrets-{uuid.uuid4().hex[:12]}"), "SQLRS_LOG_LEVEL": "DEBUG",
           "SQLRS_WARM_POOL_SIZE": "1"}
    yield from appliance_on(request, "nomad", env)


def test_no_secret_appears_in_logs_events_audit_rows_or_artifacts(appliance, scripts, nomad_double):
    robot = appliance.post("/v1/orgs/default/tokens", json={"name": "ci", "role": "member"}).json()["token"]
    as_robot = {"Authorization": f"Bearer {robot}"}
    appliance.token, operator = robot, appliance.token  # the flow runs as the robot
    try:
        built = appliance.prepare(THREE_STEPS, scripts)
        hit = appliance.prepare(THREE_STEPS, scripts)
        (scripts / "broken.sql").write_text("select * from no_such_table;\n")
        failed = appliance.prepare(["-f", "schema.sql", "-f", "broken.sql"], scripts)
        exported, _ = finished(appliance, appliance.post(f"/v1/states/{executes(built)[0]['output_state_id']}/export"))
        extended = appliance.post(f"/v1/instances/{hit['result']['instance_id']}/extend", json={"ttl_seconds": 600})
    finally:
        appliance.token = operator
    assert (built["status"], hit["status"], failed["status"]) == ("succeeded", "succeeded", "failed")
    assert exported["status"] == "succeeded" and extended.status_code == 200
    passwords = [i["dsn"].split("//", 1)[1].split("@", 1)[0].split(":", 1)[1]
                 for i in appliance.get("/v1/instances", headers=as_robot).json() if i.get("dsn")]
    deleted = appliance.delete(f"/v1/instances/{built['result']['instance_id']}", params={"force": "true"})
    assert deleted.status_code == 200, deleted.text
    secrets = {"operator token": operator, "robot token": robot, "S3 secret key": appliance.env["SQLRS_S3_SECRET_KEY"],
               "Nomad token": nomad_double.token, **{f"DSN password {n}": p for n, p in enumerate(passwords)},
               "private Redis password": (appliance.data_dir / "redis.password").read_text().strip()}
    assert len(passwords) >= 2

    haystack = {"appliance log": appliance.log_text()}
    for path in sorted((appliance.data_dir / "logs").glob("*.log")):
        haystack[f"log {path.name}"] = path.read_text(errors="replace")
    haystack["audit"] = appliance.get("/v1/audit", headers={"Accept": "application/x-ndjson"}).text
    for job in appliance.get("/v1/prepare-jobs").json():
        job_id = job["job_id"]
        haystack[f"events {job_id}"] = appliance.get(f"/v1/prepare-jobs/{job_id}/events").text
        for artifact in appliance.get(f"/v1/prepare-jobs/{job_id}/artifacts").json():
            haystack[f"artifact {job_id}/{artifact['name']}"] = appliance.get(
                f"/v1/prepare-jobs/{job_id}/artifacts/{artifact['name']}").text
    assert any("DEBUG" in text for text in haystack.values()), "the flow did not run at DEBUG level"
    assert any(name.startswith("artifact") and "postgres-" in name for name in haystack), "no server log artifact"

    leaks = [(secret_name, where) for secret_name, value in secrets.items()
             for where, text in haystack.items() if value in text]
    assert leaks == []
