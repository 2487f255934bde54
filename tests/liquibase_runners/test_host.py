"""The real Liquibase CLI planning a changelog in four formats against a real PostgreSQL."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from appliance.liquibase_runners.host import LiquibaseCli
from appliance.planning.liquibase.update_sql import parse_update_sql
from appliance.errors import CommandFailed
from appliance.shell import unprivileged
from appliance.planning.liquibase.args import parse_liquibase_args
from appliance.settings import Settings
from tests.support.liquibase import MIXED, plan


@pytest.fixture(scope="module")
def liquibase(runner) -> LiquibaseCli:
    home = Settings.model_fields["liquibase_home"].default
    if not (home / "liquibase").is_file() or shutil.which("java") is None:
        if os.environ.get("CI"):
            pytest.fail(f"Liquibase or java missing at {home}: scripts/install-deps installs both")
        pytest.skip(f"LIQUIBASE TESTS NOT RUN: no Liquibase at {home} or no java; run scripts/install-deps")
    return LiquibaseCli(runner, home, java_opts=Settings.model_fields["liquibase_java_opts"].default)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(MIXED, tmp_path / "db")
    return tmp_path


def test_update_sql_lists_every_changeset_of_every_format_in_order_with_its_checksum(liquibase, empty_database,
                                                                                     project):
    changesets = plan(liquibase, empty_database, project)
    assert [c.name for c in changesets] == [
        "db/changelog.xml::1::alice", "db/changelog.xml::2::alice", "db/more.yaml::3::carol",
        "db/more.sql::4::dave", "db/more.sql::5::dave", "db/more.json::6::erin", "db/changelog.xml::ra::bob"]
    assert all(c.checksum and c.checksum.startswith("9:") for c in changesets)
    assert changesets[0].sql.startswith("CREATE TABLE public.items")
    assert "databasechangelog" not in "".join(c.sql for c in changesets).lower()


def test_planning_changes_nothing_in_the_database(liquibase, empty_database, project, control_postgres):
    import psycopg2
    plan(liquibase, empty_database, project)
    dsn = f"postgresql://postgres:{control_postgres.password}@" + empty_database.jdbc_url.split("//", 1)[1]
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from pg_tables where schemaname = 'public'")
        assert cur.fetchone()[0] == 0
    conn.close()


def test_a_context_filter_drops_the_changesets_of_other_contexts(liquibase, empty_database, project):
    names = [c.name for c in plan(liquibase, empty_database, project, "--contexts=prod")]
    assert "db/changelog.xml::2::alice" not in names and "db/changelog.xml::1::alice" in names


def test_editing_one_changeset_changes_its_checksum_only(liquibase, empty_database, project):
    before = plan(liquibase, empty_database, project)
    sql = project / "db" / "more.sql"
    sql.write_text(sql.read_text().replace("create index items_name on items (name);",
                                           "create index items_name on items (name, id);"))
    after = plan(liquibase, empty_database, project)
    changed = [b.name for b, a in zip(before, after) if b.key != a.key]
    assert changed == ["db/more.sql::4::dave"]


def test_the_version_is_read_from_the_distribution(liquibase):
    assert liquibase.version().startswith("4.28")


def test_output_without_a_changelog_row_is_keyed_by_its_sql():
    (changeset,) = parse_update_sql("-- Changeset a.sql::1::me\nSET SEARCH_PATH TO public;\n\ncreate table t (i int);\n")
    assert changeset.checksum is None and changeset.key.startswith("sql:") and changeset.sql == "create table t (i int);"


def test_each_changeset_keeps_the_row_liquibase_records_without_the_columns_that_differ_per_run(
        liquibase, empty_database, project):
    first = json.loads(plan(liquibase, empty_database, project)[3].recorded)
    assert first == {"ID": "4", "AUTHOR": "dave", "FILENAME": "db/more.sql", "MD5SUM": first["MD5SUM"],
                     "DESCRIPTION": "sql", "COMMENTS": "", "EXECTYPE": "EXECUTED", "CONTEXTS": None,
                     "LABELS": None, "LIQUIBASE": liquibase.version()}
    assert plan(liquibase, empty_database, project)[3].recorded == json.dumps(first, sort_keys=True,
                                                                              separators=(",", ":"))


def test_a_recorded_comment_keeps_its_commas_quotes_and_line_breaks():
    (changeset,) = parse_update_sql(
        "-- Changeset a.xml::1::me\ncreate table t (i int);\nINSERT INTO public.databasechangelog (ID, AUTHOR, "
        "FILENAME, DATEEXECUTED, ORDEREXECUTED, MD5SUM, COMMENTS, DEPLOYMENT_ID) VALUES ('1', 'me', 'a.xml', NOW(), "
        "7, '9:ab', 'one, it''s\ntwo', '123');\n")
    assert json.loads(changeset.recorded) == {"ID": "1", "AUTHOR": "me", "FILENAME": "a.xml", "MD5SUM": "9:ab",
                                              "COMMENTS": "one, it's\ntwo"}


def test_a_liquibase_properties_in_the_source_is_never_read(liquibase, empty_database, project):
    (project / "liquibase.properties").write_text("classpath=db/driver.jar\ndriver=org.example.Driver\n")
    assert len(plan(liquibase, empty_database, project)) == 7  # not "db/driver.jar does not exist"


def test_a_changelog_cannot_read_a_file_outside_its_source_that_only_the_appliance_may_read(
        liquibase, empty_database, outside_the_source):
    if os.geteuid() != 0:
        message = "RUNS ONLY AS ROOT: Liquibase drops to an unprivileged user only when the appliance is root"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI runs as root: this must never be skipped there
        pytest.skip(message)
    confined = LiquibaseCli(liquibase.runner, liquibase.home, java_opts=liquibase.java_opts,
                            run_as=unprivileged(Settings.model_fields["liquibase_os_user"].default))
    command = parse_liquibase_args(["update", "--changelog-file=changelog.xml"])
    with pytest.raises(CommandFailed) as failed:
        confined.plan(command, empty_database, cwd=outside_the_source)
    assert "the appliance secret" not in failed.value.stdout + failed.value.stderr
    assert "secret.sql" in failed.value.stdout + failed.value.stderr  # it says which file it could not read
    as_root = liquibase.plan(command, empty_database, cwd=outside_the_source)  # the file is there to read
    assert "the appliance secret" in as_root[0].sql
