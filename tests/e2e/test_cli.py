"""The `sqlrs` CLI against a real appliance: the interface outside checks script against."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.support.psql import psql


def sqlrs(appliance, *args: str, cwd: Path, input: str | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "appliance.cli.main", "--url", appliance.url,
            "--token-file", str(appliance.data_dir / "admin.token"), *args]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, input=input, timeout=180)


def test_prepare_prints_the_dsn_as_its_last_line(appliance, scripts):
    result = sqlrs(appliance, "prepare:psql", "--", "-f", "schema.sql", "-f", "data.sql", cwd=scripts)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("DSN=postgres://")
    assert psql(last[len("DSN="):], "select count(*) from items").stdout.strip() == "100"


def test_json_output_prints_the_final_job_status(appliance, scripts):
    result = sqlrs(appliance, "--output", "json", "prepare:psql", "--", "-f", "schema.sql", cwd=scripts)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["status"] == "succeeded"
    assert [t["type"] for t in status["tasks"]] == ["plan", "resolve_image", "state_execute", "prepare_instance"]
    assert status["result"]["dsn"].startswith("postgres://")


def test_a_second_prepare_reports_every_step_as_cached(appliance, scripts):
    args = ["--output", "json", "prepare:psql", "--", "-f", "schema.sql", "-f", "data.sql"]
    sqlrs(appliance, *args, cwd=scripts)
    again = json.loads(sqlrs(appliance, *args, cwd=scripts).stdout)
    assert [t["cached"] for t in again["tasks"] if t["type"] == "state_execute"] == [True, True]


def test_ls_states_prints_a_json_array(appliance, scripts):
    sqlrs(appliance, "prepare:psql", "--", "-f", "schema.sql", cwd=scripts)
    result = sqlrs(appliance, "--output", "json", "ls", "--states", cwd=scripts)
    assert result.returncode == 0, result.stderr
    states = json.loads(result.stdout)
    assert isinstance(states, list) and states and {"state_id", "parent_state_id", "size_bytes"} <= set(states[0])


def test_a_failed_job_exits_non_zero_with_the_code_and_message_on_stderr(appliance, scripts):
    (scripts / "broken.sql").write_text("select * from missing_table;\n")
    result = sqlrs(appliance, "prepare:psql", "--", "-f", "schema.sql", "-f", "broken.sql", cwd=scripts)
    assert result.returncode == 1
    assert "step_failed" in result.stderr and "missing_table" in result.stderr
    assert "DSN=" not in result.stdout


def test_a_missing_local_file_is_a_usage_error(appliance, scripts):
    result = sqlrs(appliance, "prepare:psql", "--", "-f", "nope.sql", cwd=scripts)
    assert result.returncode == 2
    assert "nope.sql" in result.stderr


def test_run_psql_runs_the_local_psql_against_the_instance(appliance, scripts):
    status = json.loads(sqlrs(appliance, "--output", "json", "prepare:psql", "--name", "runme", "--",
                              "-f", "schema.sql", "-f", "data.sql", cwd=scripts).stdout)
    result = sqlrs(appliance, "run:psql", "--instance", status["result"]["instance_id"], "--", "-At", "-c",
                   "select count(*) from items", cwd=scripts)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "100"


def test_rm_refuses_an_instance_with_connections_unless_forced(appliance, scripts):
    status = json.loads(sqlrs(appliance, "--output", "json", "prepare:psql", "--", "-f", "schema.sql",
                              cwd=scripts).stdout)
    instance_id = status["result"]["instance_id"]
    holder = subprocess.Popen(["psql", "-X", status["result"]["dsn"], "-c", "select pg_sleep(30)"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sleeping = "select count(*) from pg_stat_activity where query like '%pg_sleep(30)%' and pid <> pg_backend_pid()"
        deadline = time.monotonic() + 10
        while psql(status["result"]["dsn"], sleeping).stdout.strip() != "1" and time.monotonic() < deadline:
            time.sleep(0.1)
        blocked = sqlrs(appliance, "rm", instance_id, cwd=scripts)
        assert blocked.returncode == 4, blocked.stdout + blocked.stderr
        assert "active_connections" in blocked.stdout + blocked.stderr
        forced = sqlrs(appliance, "rm", "-f", instance_id, cwd=scripts)
        assert forced.returncode == 0, forced.stderr
        assert appliance.get(f"/v1/instances/{instance_id}").status_code == 404
    finally:
        holder.kill()


def test_cache_explain_names_the_first_step_that_must_be_built(appliance, scripts):
    sqlrs(appliance, "prepare:psql", "--", "-f", "schema.sql", cwd=scripts)
    result = sqlrs(appliance, "--output", "json", "cache", "explain", "--", "-f", "schema.sql", "-f", "data.sql",
                   cwd=scripts)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["decision"], answer["reason_code"]) == ("miss", "step_changed:1")
    human = sqlrs(appliance, "cache", "explain", "--", "-f", "schema.sql", cwd=scripts)
    assert human.stdout.startswith("hit: exact_state_match")


def test_cache_status_prints_usage_and_capacity(appliance, scripts):
    result = sqlrs(appliance, "--output", "json", "cache", "status", cwd=scripts)
    assert result.returncode == 0, result.stderr
    assert {"usage_bytes", "effective_max_bytes", "pressure_reasons"} <= set(json.loads(result.stdout))
    assert "usage" in sqlrs(appliance, "cache", "status", cwd=scripts).stdout


def uploads(appliance) -> int:
    return len(appliance.get("/v1/audit", params={"action": "source.uploaded", "limit": 1000}).json())


def test_a_repeated_prepare_uploads_nothing_and_changed_files_are_uploaded(appliance, scripts):
    args = ("prepare:psql", "--", "-f", "schema.sql", "-f", "data.sql")
    assert sqlrs(appliance, *args, cwd=scripts).returncode == 0
    before = uploads(appliance)
    repeated = sqlrs(appliance, *args, cwd=scripts)
    assert repeated.returncode == 0, repeated.stderr
    assert uploads(appliance) == before
    (scripts / "data.sql").write_text("insert into items values (1, 'one');\n")
    changed = sqlrs(appliance, *args, cwd=scripts)
    assert changed.returncode == 0, changed.stderr
    assert uploads(appliance) == before + 1
    assert psql(changed.stdout.strip().splitlines()[-1][len("DSN="):], "select count(*) from items").stdout.strip() == "1"


def test_status_counts_what_the_org_has_now(appliance, scripts):
    assert sqlrs(appliance, "prepare:psql", "--", "-f", "schema.sql", cwd=scripts).returncode == 0
    result = sqlrs(appliance, "--output", "json", "status", cwd=scripts)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    live = [i for i in appliance.get("/v1/instances").json() if i["status"] == "active"]
    assert status["org"] == "default" and status["ready"]["ok"] is True
    assert status["counts"]["instances_live"] >= len(live) >= 1
    assert status["counts"]["states"] >= 1 and status["counts"]["jobs_queued"] >= 0
    assert "instances" in sqlrs(appliance, "status", cwd=scripts).stdout


def liquibase_project(tmp_path: Path) -> Path:
    import shutil
    project = tmp_path / "shop"
    shutil.copytree(Path(__file__).parent / "changelogs" / "shop", project)
    (project / "data.sql").write_text((project / "data.sql").read_text()
                                      + f"\n--changeset shop:marker\n-- {tmp_path.name}\nselect 1;\n")
    return project


def test_prepare_lb_uploads_the_project_and_prints_the_dsn_then_plan_lb_sees_it_cached(appliance, tmp_path):
    project = liquibase_project(tmp_path)
    lb = ["--", "update", "--changelog-file", "changelog.xml", "--contexts", "prod"]
    result = sqlrs(appliance, "prepare:lb", "--dir", str(project), *lb, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    dsn = result.stdout.strip().splitlines()[-1].removeprefix("DSN=")
    assert psql(dsn, "select count(*) from customers").stdout.strip() == "2"
    plan = json.loads(sqlrs(appliance, "--output", "json", "plan:lb", *lb, cwd=project).stdout)
    steps = [t for t in plan["tasks"] if t["type"] == "state_execute"]
    assert len(steps) == 11 and all(t["cached"] for t in steps) and plan["result"] is None


def test_prepare_lb_refuses_a_connection_argument_with_exit_2(appliance, tmp_path):
    project = liquibase_project(tmp_path)
    result = sqlrs(appliance, "prepare:lb", "--", "update", "--changelog-file", "changelog.xml",
                   "--password=hunter2", cwd=project)
    assert result.returncode == 2 and "the appliance supplies the connection" in result.stderr
