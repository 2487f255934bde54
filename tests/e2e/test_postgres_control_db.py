"""The whole appliance with its Control DB on PostgreSQL instead of SQLite."""
from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.appliance import start_appliance
from tests.support.prepares import executes
from tests.support.psql import psql


@pytest.fixture(scope="module")
def appliance(control_postgres):
    app = start_appliance({"SQLRS_DATABASE_URL": control_postgres.new_database_url()})
    yield app
    app.destroy()
    shutil.rmtree(app.data_dir.parent, ignore_errors=True)


def test_prepare_and_cache_hits_work_with_a_postgresql_control_db(appliance, scripts):
    first = appliance.prepare(["-f", "schema.sql", "-f", "data.sql"], scripts)
    assert first["status"] == "succeeded", first["error"]
    second = appliance.prepare(["-f", "schema.sql", "-f", "data.sql"], scripts)
    assert [t["cached"] for t in executes(second)] == [True, True]
    assert psql(second["result"]["dsn"], "select count(*) from items").stdout.strip() == "100"
    assert not (appliance.data_dir / "control.db").exists()


def test_concurrent_identical_prepares_build_once_with_a_postgresql_control_db(appliance, scripts):
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: appliance.submit(["-f", "schema.sql", "-f", "more.sql"], scripts),
                                  range(4)))
    statuses = [appliance.wait(r.json()["job_id"]) for r in responses]
    assert all(s["status"] == "succeeded" for s in statuses), [s["error"] for s in statuses]
    for index in range(2):
        assert sum(executes(s)[index]["cached"] is False for s in statuses) == 1
