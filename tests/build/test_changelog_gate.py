"""The gate one Liquibase run is caught at, changeset by changeset (``build/liquibase_batch``),
against a real PostgreSQL: a session stands in for Liquibase, running other statements between
its row inserts as Liquibase does."""
from __future__ import annotations

import threading

import psycopg2
import pytest

from appliance.build.liquibase_batch import _CHANGESET_ROW, ChangelogGate
from appliance.runtime.base import SUPERUSER

ROWS = 200


@pytest.fixture
def gated_server(control_postgres):
    """The throwaway server with the build superuser and a changelog table in ``postgres``."""
    admin = psycopg2.connect(host="127.0.0.1", port=control_postgres.port, user="postgres",
                             password=control_postgres.password, dbname="postgres")
    admin.autocommit = True
    cursor = admin.cursor()
    cursor.execute(f'CREATE ROLE "{SUPERUSER}" SUPERUSER LOGIN PASSWORD %s', (control_postgres.password,))
    cursor.execute("CREATE TABLE databasechangelog (id int, note text)")
    yield control_postgres
    cursor.execute("DROP TABLE databasechangelog")
    cursor.execute(f'DROP ROLE "{SUPERUSER}"')
    admin.close()


def _liquibase_like(server, rows: int, failures: list) -> None:
    """Each 'changeset' runs and commits its own statements, then inserts its row."""
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=server.port, user="postgres", password=server.password,
                                dbname="postgres")
        cursor = conn.cursor()
        for number in range(rows):
            cursor.execute("CREATE TEMP TABLE IF NOT EXISTS effects (a int)")
            cursor.execute("INSERT INTO effects SELECT generate_series(1, 20)")
            conn.commit()
            cursor.execute("INSERT INTO databasechangelog VALUES (%s, 'row')", (number,))
            conn.commit()
        conn.close()
    except BaseException as exc:
        failures.append(exc)


def test_every_row_insert_is_caught_at_the_gate_one_at_a_time_and_seen_as_the_insert(gated_server):
    gate = ChangelogGate(gated_server.port, gated_server.password)
    gate.lock()
    failures: list = []
    writer = threading.Thread(target=_liquibase_like, args=(gated_server, ROWS, failures))
    writer.start()
    seen: list[str] = []
    rows_at_each_stop: list[int] = []
    try:
        while writer.is_alive() or gate.waiting() is not None:
            statement = gate.waiting()
            if statement is None:
                writer.join(0.001)
                continue
            cursor = gate.cursor
            cursor.execute("SELECT count(*) FROM databasechangelog")
            rows_at_each_stop.append(cursor.fetchone()[0])
            seen.append(statement)
            gate.let_through()
    finally:
        gate.release()
        writer.join()
        gate.close()
    assert failures == []
    assert rows_at_each_stop == list(range(ROWS))  # each insert waited, with every row before it written
    assert [s for s in seen if not _CHANGESET_ROW.match(s)] == []  # never what the session ran before it
