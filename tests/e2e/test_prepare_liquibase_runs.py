"""One Liquibase per run of changesets, or one per changeset: either way every changeset's
state holds exactly the changesets up to it, recorded as Liquibase recorded them."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.appliance import appliance_on
from tests.support.prepares import executes
from tests.support.psql import psql

# Liquibase's own tables, as Liquibase creates them (whoever runs its statements)
CHANGELOG_TABLES = " ".join([
    "databasechangelog.id character varying NO", "databasechangelog.author character varying NO",
    "databasechangelog.filename character varying NO",
    "databasechangelog.dateexecuted timestamp without time zone NO", "databasechangelog.orderexecuted integer NO",
    "databasechangelog.exectype character varying NO", "databasechangelog.md5sum character varying YES",
    "databasechangelog.description character varying YES", "databasechangelog.comments character varying YES",
    "databasechangelog.tag character varying YES", "databasechangelog.liquibase character varying YES",
    "databasechangelog.contexts character varying YES", "databasechangelog.labels character varying YES",
    "databasechangelog.deployment_id character varying YES", "databasechangeloglock.id integer NO",
    "databasechangeloglock.locked boolean NO", "databasechangeloglock.lockgranted timestamp without time zone YES",
    "databasechangeloglock.lockedby character varying YES"])
TINY = 8  # changesets that take milliseconds: the boundaries come faster than any poll


@pytest.fixture(scope="module", params=["one-jvm-per-run", "one-jvm-per-changeset"])
def appliance(request):
    one_per_run = "true" if request.param == "one-jvm-per-run" else "false"
    yield from appliance_on(request, "btrfs", {"SQLRS_LIQUIBASE_ONE_JVM_PER_RUN": one_per_run})


@pytest.fixture
def project(tmp_path: Path) -> Path:
    changesets = "\n".join(f'  <changeSet id="{k}" author="t"><sql>create table t{k} (x int default {k}); '
                           f'insert into t{k} default values</sql></changeSet>' for k in range(1, TINY + 1))
    (tmp_path / "changelog.xml").write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<databaseChangeLog xmlns="http://www.liquibase.org/xml/ns/dbchangelog"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.liquibase.org/xml/ns/dbchangelog
    http://www.liquibase.org/xml/ns/dbchangelog/dbchangelog-4.20.xsd">
  <!-- {tmp_path.name} -->
{changesets}
</databaseChangeLog>
""")
    return tmp_path


def run(appliance, project: Path, *args: str) -> dict:
    response = appliance.submit_lb(list(args), project)
    assert response.status_code == 201, response.text
    status = appliance.wait(response.json()["job_id"], timeout=300)
    assert status["status"] == "succeeded", status.get("error")
    return status


def test_every_changeset_state_holds_exactly_the_changesets_up_to_it(appliance, project):
    built = run(appliance, project, "update", "--changelog-file", "changelog.xml")
    assert [t["cached"] for t in executes(built)] == [False] * TINY
    one_run = [e["message"] for e in appliance.events(built["job_id"]) if "in one run" in (e.get("message") or "")]
    # the first changeset too: its row waits at the gate in the tables the job created as Liquibase would
    assert one_run == ([f"liquibase: {TINY} changesets in one run, a state at each"]
                       if appliance.env["SQLRS_LIQUIBASE_ONE_JVM_PER_RUN"] == "true" else [])
    ledger = psql(built["result"]["dsn"], "select id, orderexecuted, md5sum, deployment_id "
                                          "from databasechangelog order by orderexecuted").stdout.splitlines()
    for k in range(1, TINY + 1):
        status = run(appliance, project, "update-count", "--changelog-file", "changelog.xml", "--count", str(k))
        assert all(t["cached"] for t in executes(status))  # the k-th state of the chain built above
        dsn = status["result"]["dsn"]
        tables = psql(dsn, "select string_agg(tablename, ' ' order by tablename) from pg_tables "
                           "where tablename ~ '^t[0-9]+$'").stdout.split()
        assert tables == sorted(f"t{n}" for n in range(1, k + 1))
        assert psql(dsn, f"select x from t{k}").stdout.strip() == str(k)  # committed, not rolled back
        rows = psql(dsn, "select id, orderexecuted, md5sum, deployment_id "
                         "from databasechangelog order by orderexecuted").stdout.splitlines()
        assert rows == ledger[:k]  # what Liquibase wrote, byte for byte
        assert psql(dsn, "select id, locked, lockgranted, lockedby from databasechangeloglock").stdout == "1|f||\n"
        assert psql(dsn, "select string_agg(format('%s.%s %s %s', table_name, column_name, data_type, "
                         "is_nullable), ' ' order by table_name, ordinal_position) from information_schema.columns "
                         "where table_name like 'databasechangelog%'").stdout.strip() == CHANGELOG_TABLES
        assert psql(dsn, "select string_agg(tableowner, ' ') from pg_tables "
                         "where tablename like 'databasechangelog%'").stdout.strip() == "sqlrs sqlrs"
