"""prepare:psql end to end: HTTP → RQ → a real worker process → real Postgres on btrfs."""
from __future__ import annotations

import re
import time
import uuid

import pytest

from tests.support.appliance import appliance_on
from tests.support.prepares import THREE_STEPS, executes
from tests.support.psql import psql


@pytest.fixture(scope="module", params=["btrfs", "zfs", "docker", "nomad"])
def appliance(request):
    """The same prepare flow, unchanged, on every snapshot driver and every runtime that runs here
    for real (process on btrfs and zfs; docker; nomad through the Nomad-API double)."""
    yield from appliance_on(request, request.param)


def test_a_three_step_prepare_builds_three_states_and_returns_a_working_dsn(appliance, scripts):
    status = appliance.prepare(THREE_STEPS, scripts)
    assert status["status"] == "succeeded", status["error"]
    steps = executes(status)
    assert [t["cached"] for t in steps] == [False, False, False]
    state_ids = {s["state_id"] for s in appliance.get("/v1/states").json()}
    assert {t["output_state_id"] for t in steps} <= state_ids
    assert psql(status["result"]["dsn"], "select count(*) from items").stdout.strip() == "100"


def test_repeating_a_prepare_runs_no_psql_at_all(appliance, scripts):
    first = appliance.prepare(THREE_STEPS, scripts)
    second = appliance.prepare(THREE_STEPS, scripts)
    assert second["status"] == "succeeded"
    assert [t["cached"] for t in executes(second)] == [True, True, True]
    assert [t["output_state_id"] for t in executes(second)] == [t["output_state_id"] for t in executes(first)]
    messages = [e.get("message") or "" for e in appliance.events(second["job_id"])]
    assert not any(m.startswith("psql:") for m in messages)
    assert any(m.startswith("cache hit") for m in messages)
    metrics = appliance.get("/metrics").text
    hits = re.search(r'^sqlrs_steps_total\{outcome="cache_hit"\} (\d+)', metrics, re.M)
    assert hits and float(hits.group(1)) >= 3


def test_changing_the_third_file_reuses_the_first_two_states(appliance, scripts):
    first = appliance.prepare(THREE_STEPS, scripts)
    (scripts / "more.sql").write_text("create index items_id_name on items (id, name);\n")
    second = appliance.prepare(THREE_STEPS, scripts)
    assert [t["cached"] for t in executes(second)] == [True, True, False]
    assert executes(second)[2]["output_state_id"] != executes(first)[2]["output_state_id"]


def test_changing_only_an_included_file_changes_the_state(appliance, scripts):
    (scripts / "lib").mkdir()
    (scripts / "lib" / "seed.sql").write_text("insert into items values (1000, 'included');\n")
    (scripts / "main.sql").write_text("\\ir lib/seed.sql\n")
    args = ["-f", "schema.sql", "-f", "main.sql"]
    first = appliance.prepare(args, scripts)
    (scripts / "lib" / "seed.sql").write_text("insert into items values (2000, 'changed');\n")
    second = appliance.prepare(args, scripts)
    assert executes(second)[1]["output_state_id"] != executes(first)[1]["output_state_id"]
    assert psql(second["result"]["dsn"], "select max(id) from items").stdout.strip() == "2000"


def test_a_psql_variable_is_part_of_the_state(appliance, scripts):
    (scripts / "var.sql").write_text("insert into items values (:x, 'from a variable');\n")
    one = appliance.prepare(["-v", "x=1", "-f", "schema.sql", "-f", "var.sql"], scripts)
    two = appliance.prepare(["-v", "x=2", "-f", "schema.sql", "-f", "var.sql"], scripts)
    assert executes(one)[0]["output_state_id"] == executes(two)[0]["output_state_id"]
    assert executes(one)[1]["output_state_id"] != executes(two)[1]["output_state_id"]
    assert psql(two["result"]["dsn"], "select id from items").stdout.strip() == "2"


def test_two_instances_of_one_state_are_isolated(appliance, scripts):
    a = appliance.prepare(THREE_STEPS, scripts)
    b = appliance.prepare(THREE_STEPS, scripts)
    assert a["result"]["instance_id"] != b["result"]["instance_id"]
    assert psql(a["result"]["dsn"], "delete from items").returncode == 0
    assert psql(b["result"]["dsn"], "select count(*) from items").stdout.strip() == "100"
    assert psql(a["result"]["dsn"], "select count(*) from items").stdout.strip() == "0"


def test_the_dsn_needs_the_instance_password(appliance, scripts):
    status = appliance.prepare(THREE_STEPS, scripts)
    dsn = status["result"]["dsn"]
    user_and_password = dsn.split("//", 1)[1].split("@", 1)[0]
    wrong = dsn.replace(user_and_password, "sqlrs:wrong-password")
    result = psql(wrong, "select 1")
    assert result.returncode != 0 and "password authentication failed" in result.stderr


def test_a_sql_error_fails_the_job_with_the_psql_message_and_caches_nothing(appliance, scripts):
    (scripts / "broken.sql").write_text("select * from no_such_table;\n")
    before = {s["state_id"] for s in appliance.get("/v1/states").json()}
    status = appliance.prepare(["-f", "schema.sql", "-f", "broken.sql"], scripts)
    assert status["status"] == "failed"
    assert 'relation "no_such_table" does not exist' in status["error"]["message"]
    after = {s["state_id"] for s in appliance.get("/v1/states").json()}
    assert executes(status)[1]["output_state_id"] not in after
    assert after - before == {executes(status)[0]["output_state_id"]}
    events = appliance.events(status["job_id"])
    assert any(e["type"] == "error" and "no_such_table" in e["message"] for e in events)
    assert any(e["type"] == "log" and "no_such_table" in (e.get("message") or "") for e in events)


def test_a_failed_steps_server_log_is_kept_as_an_artifact_and_its_run_dir_goes(appliance, scripts):
    status = appliance.prepare(["-c", f"select 1/0 as boom_{uuid.uuid4().hex[:8]}"], scripts)
    assert status["status"] == "failed"
    deadline = time.monotonic() + 30
    while not (logs := [a["name"] for a in appliance.get(f"/v1/prepare-jobs/{status['job_id']}/artifacts").json()
                        if a["name"].startswith("logs/postgres-")]):
        assert time.monotonic() < deadline, "no server log artifact"
        time.sleep(0.2)
    server_log = appliance.get(f"/v1/prepare-jobs/{status['job_id']}/artifacts/{logs[0]}").text
    assert "ERROR:  division by zero" in server_log  # what the server said, from every runtime
    volume_id = logs[0].removeprefix("logs/postgres-").removesuffix(".log")
    assert not (appliance.data_dir / "run" / volume_id).exists()


def test_no_secret_reaches_the_events(appliance, scripts):
    status = appliance.prepare(THREE_STEPS, scripts)
    password = status["result"]["dsn"].split("//", 1)[1].split("@", 1)[0].split(":", 1)[1]
    stream = appliance.get(f"/v1/prepare-jobs/{status['job_id']}/events").text
    assert password not in stream
    assert password not in appliance.log_text()
