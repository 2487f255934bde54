"""An instance for the length of one command, against a real appliance: the composite
``prepare:psql … run:psql …`` / ``… run -- COMMAND``, and ``sqlrs init`` then ``sqlrs run``."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from sqlrs_client import Client


def sqlrs(appliance, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "appliance.cli.main", "--url", appliance.url,
            "--token-file", str(appliance.data_dir / "admin.token"), *args]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=180)


def live_instances(appliance) -> set[str]:
    with Client(appliance.url, appliance.token) as client:
        return {i["instance_id"] for i in client.instances() if i["status"] == "active"}


def test_the_composite_runs_psql_against_the_instance_then_deletes_it(appliance, scripts):
    before = live_instances(appliance)
    result = sqlrs(appliance, "prepare:psql", "--", "-f", "schema.sql", "-f", "data.sql",
                   "run:psql", "--", "-At", "-c", "select count(*) from items", cwd=scripts)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "100" and "DSN=" not in result.stdout
    assert live_instances(appliance) == before


def test_the_composite_passes_on_the_command_s_exit_code_and_its_environment(appliance, scripts):
    script = 'test "$(psql -XAt -c "select count(*) from items")" = 100 && test -n "$DATABASE_URL" && exit 7'
    before = live_instances(appliance)
    result = sqlrs(appliance, "prepare:psql", "--", "-f", "schema.sql", "-f", "data.sql", "run", "--",
                   "sh", "-c", script, cwd=scripts)
    assert result.returncode == 7, result.stderr
    assert live_instances(appliance) == before


def test_a_failed_prepare_runs_nothing(appliance, scripts):
    (scripts / "broken.sql").write_text("select * from missing_table;\n")
    result = sqlrs(appliance, "prepare:psql", "--", "-f", "broken.sql", "run", "--", "touch", "ran", cwd=scripts)
    assert result.returncode == 1 and "step_failed" in result.stderr
    assert not (scripts / "ran").exists()


def test_a_liquibase_composite_runs_against_the_changelog_s_database(appliance, project):
    result = sqlrs(appliance, "prepare:lb", "--dir", str(project), "--", "update", "--changelog-file=changelog.xml",
                   "run:psql", "--", "-At", "-c", "select count(*) from databasechangelog", cwd=project)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 1


def test_init_then_run_prepares_the_project_for_a_command_in_any_subdirectory(appliance, scripts):
    written = sqlrs(appliance, "init", "psql", "--", "-f", "schema.sql", "-f", "data.sql", cwd=scripts)
    assert written.returncode == 0, written.stderr
    assert "url = " in (scripts / "sqlrs.toml").read_text()  # the appliance it was written against
    (scripts / "tests").mkdir()
    script = 'psql -XAt -c "select count(*) from items" > count.txt'
    result = subprocess.run([sys.executable, "-m", "appliance.cli.main", "--token-file",
                             str(appliance.data_dir / "admin.token"), "run", "--", "sh", "-c", script],
                            cwd=scripts / "tests", capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert (scripts / "tests" / "count.txt").read_text().strip() == "100"


def test_init_refuses_a_file_its_arguments_name_that_does_not_exist(appliance, scripts):
    result = sqlrs(appliance, "init", "psql", "--", "-f", "nope.sql", cwd=scripts)
    assert result.returncode == 2 and "nope.sql" in result.stderr
    assert not (scripts / "sqlrs.toml").exists()


def test_run_without_a_project_says_how_to_make_one(appliance, tmp_path):
    result = sqlrs(appliance, "run", "--", "true", cwd=tmp_path)
    assert result.returncode == 2 and "sqlrs init" in result.stderr


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shell-project"


def test_the_shell_example_s_test_runner_passes_through_sqlrs_run(appliance, tmp_path):
    before = live_instances(appliance)
    result = subprocess.run([sys.executable, "-m", "appliance.cli.main", "--url", appliance.url, "--token-file",
                             str(appliance.data_dir / "admin.token"), "run", "--", "./run-tests.sh"],
                            cwd=EXAMPLE, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok   ") == 4 and "FAIL" not in result.stdout
    assert live_instances(appliance) == before


def test_a_failing_shell_runner_s_exit_code_is_sqlrs_run_s(appliance, tmp_path):
    shutil.copytree(EXAMPLE, tmp_path / "project")
    runner = tmp_path / "project" / "run-tests.sh"
    runner.write_text(runner.read_text().replace('"10000"', '"10001"'))  # a check that now fails
    result = subprocess.run([sys.executable, "-m", "appliance.cli.main", "--url", appliance.url, "--token-file",
                             str(appliance.data_dir / "admin.token"), "run", "--", "./run-tests.sh"],
                            cwd=tmp_path / "project", capture_output=True, text=True, timeout=180)
    assert result.returncode == 1 and "FAIL money is never created" in result.stdout
