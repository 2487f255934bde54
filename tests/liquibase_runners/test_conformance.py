"""What every Liquibase runner does, whichever driver runs it: each test runs on the host and in
a container (``liquibase_runner``), the real Liquibase against a real PostgreSQL."""
from __future__ import annotations

import json
import time
import zipfile

import pytest

from appliance.errors import CommandFailed, CommandTimedOut
from appliance.planning.liquibase.args import parse_liquibase_args
from tests.support.liquibase import (
    Recording,
    distribution_version,
    liquibase_processes,
    plan,
    runs_liquibase,
)
from tests.support.polling import wait_until


def test_update_sql_lists_every_changeset_of_every_format_in_order_with_its_checksum(liquibase_runner,
                                                                                     empty_database, project):
    changesets = plan(liquibase_runner, empty_database, project)
    assert [c.name for c in changesets] == [
        "db/changelog.xml::1::alice", "db/changelog.xml::2::alice", "db/more.yaml::3::carol",
        "db/more.sql::4::dave", "db/more.sql::5::dave", "db/more.json::6::erin", "db/changelog.xml::ra::bob"]
    assert all(c.checksum and c.checksum.startswith("9:") for c in changesets)
    assert changesets[0].sql.startswith("CREATE TABLE public.items")
    assert "databasechangelog" not in "".join(c.sql for c in changesets).lower()


def test_planning_changes_nothing_in_the_database(liquibase_runner, empty_database, project, control_postgres):
    import psycopg2
    plan(liquibase_runner, empty_database, project)
    dsn = f"postgresql://postgres:{control_postgres.password}@" + empty_database.jdbc_url.split("//", 1)[1]
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from pg_tables where schemaname = 'public'")
        assert cur.fetchone()[0] == 0
    conn.close()


def test_a_context_filter_drops_the_changesets_of_other_contexts(liquibase_runner, empty_database, project):
    names = [c.name for c in plan(liquibase_runner, empty_database, project, "--contexts=prod")]
    assert "db/changelog.xml::2::alice" not in names and "db/changelog.xml::1::alice" in names


def test_editing_one_changeset_changes_its_checksum_only(liquibase_runner, empty_database, project):
    before = plan(liquibase_runner, empty_database, project)
    sql = project / "db" / "more.sql"
    sql.write_text(sql.read_text().replace("create index items_name on items (name);",
                                           "create index items_name on items (name, id);"))
    after = plan(liquibase_runner, empty_database, project)
    changed = [b.name for b, a in zip(before, after) if b.key != a.key]
    assert changed == ["db/more.sql::4::dave"]


def test_each_changeset_keeps_the_row_liquibase_records_without_the_columns_that_differ_per_run(
        liquibase_runner, empty_database, project):
    first = json.loads(plan(liquibase_runner, empty_database, project)[3].recorded)
    assert first == {"ID": "4", "AUTHOR": "dave", "FILENAME": "db/more.sql", "MD5SUM": first["MD5SUM"],
                     "DESCRIPTION": "sql", "COMMENTS": "", "EXECTYPE": "EXECUTED", "CONTEXTS": None,
                     "LABELS": None, "LIQUIBASE": liquibase_runner.version()}
    assert plan(liquibase_runner, empty_database, project)[3].recorded == json.dumps(first, sort_keys=True,
                                                                                     separators=(",", ":"))


def test_the_version_is_the_one_its_distribution_records(liquibase_runner, host_driver):
    """The image is built from the distribution the host runs (scripts/build-liquibase-image)."""
    assert liquibase_runner.version() == distribution_version(host_driver.settings.liquibase_home)
    assert liquibase_runner.version().startswith("4.28")


def test_health_says_ok_when_liquibase_is_there(liquibase_runner):
    assert liquibase_runner.health() == "ok"


def test_health_says_what_is_missing_without_running_liquibase(liquibase_driver, runner, missing):
    spy, absent = Recording(runner), liquibase_driver.without_liquibase(missing)
    health = absent.open(spy).health()
    assert health.startswith("error: no Liquibase") and absent.needs in health
    assert not [argv for argv, _ in spy.calls if runs_liquibase(argv)]


def test_a_liquibase_properties_in_the_source_is_never_read(liquibase_runner, empty_database, project):
    (project / "liquibase.properties").write_text("classpath=db/driver.jar\ndriver=org.example.Driver\n")
    (project / "liquibase.properties").chmod(0o644)
    assert len(plan(liquibase_runner, empty_database, project)) == 7  # not "db/driver.jar does not exist"


def test_a_jar_in_the_sources_liquibase_libs_is_never_loaded(liquibase_runner, empty_database, project):
    """Liquibase's own launcher adds the jars of ./liquibase_libs to its class path, and a class
    path is code and files of the tenant's choosing: here, a changelog found only inside the jar."""
    (project / "liquibase_libs").mkdir(mode=0o755)
    with zipfile.ZipFile(project / "liquibase_libs" / "extension.jar", "w") as jar:
        jar.writestr("from-a-jar.sql", "--liquibase formatted sql\n--changeset t:1\ncreate table from_a_jar (i int);\n")
    (project / "liquibase_libs" / "extension.jar").chmod(0o644)
    command = parse_liquibase_args(["update", "--changelog-file=from-a-jar.sql"])
    with pytest.raises(CommandFailed) as failed:
        liquibase_runner.plan(command, empty_database, cwd=project)
    assert "from-a-jar.sql" in failed.value.stdout + failed.value.stderr  # not found: the jar was not read


def test_a_changelog_cannot_read_a_file_outside_its_source(liquibase_runner, empty_database, outside_the_source):
    command = parse_liquibase_args(["update", "--changelog-file=changelog.xml"])
    with pytest.raises(CommandFailed) as failed:
        liquibase_runner.plan(command, empty_database, cwd=outside_the_source)
    assert "the appliance secret" not in failed.value.stdout + failed.value.stderr
    assert "secret.sql" in failed.value.stdout + failed.value.stderr  # it says which file it could not read


def test_the_password_never_appears_in_argv(liquibase_driver, runner, empty_database, project):
    spy = Recording(runner)
    password = empty_database.password  # the server demands it (SCRAM): the plan succeeds only if it arrived
    assert password
    plan(liquibase_driver.open(spy), empty_database, project)
    assert not [argv for argv, _ in spy.calls if password in " ".join(argv)]
    (env,) = [env for argv, env in spy.calls if runs_liquibase(argv)]
    assert env["LIQUIBASE_COMMAND_PASSWORD"] == password


def test_a_run_past_its_timeout_raises_our_own_error_and_leaves_nothing_running(liquibase_runner, empty_database,
                                                                              sleeping_project):
    started = time.monotonic()
    with pytest.raises(CommandTimedOut) as error:
        liquibase_runner.run(parse_liquibase_args(["update", "--changelog-file=changelog.sql"]), empty_database,
                             cwd=sleeping_project, timeout=3)
    assert error.value.timeout == 3
    assert time.monotonic() - started < 30  # not when the two-minute changeset would have ended
    wait_until(lambda: not liquibase_processes(empty_database), 10, "the killed run's JVM to be gone")


def test_a_changelog_parameter_reaches_the_changelog(liquibase_runner, empty_database, project):
    (project / "db" / "param.sql").write_text("--liquibase formatted sql\n--changeset p:1\ncreate table ${table} (id int);\n")
    (project / "db" / "param.sql").chmod(0o644)
    command = parse_liquibase_args(["update", "--changelog-file=db/param.sql", "-Dtable=from_a_parameter"])
    (changeset,) = liquibase_runner.plan(command, empty_database, cwd=project)
    assert "from_a_parameter" in changeset.sql
