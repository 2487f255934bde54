"""The Control DB schema is versioned from day one, on SQLite and PostgreSQL alike."""
from __future__ import annotations

import json
import subprocess
import sys

from appliance.control.db import close_database, open_database
from appliance.control.migrations import current_version, latest_version, migrate
from appliance.control.models import ALL_MODELS


def test_a_fresh_database_is_migrated_to_the_latest_version(control_db_url):
    db = open_database(control_db_url)
    try:
        assert current_version(db) == 0
        assert migrate(db) == list(range(1, latest_version() + 1))
        assert current_version(db) == latest_version()
        assert all(db.table_exists(model._meta.table_name) for model in ALL_MODELS)
    finally:
        close_database(db)


def test_migrating_twice_changes_nothing(control_db_url):
    db = open_database(control_db_url)
    try:
        migrate(db)
        assert migrate(db) == []
        assert current_version(db) == latest_version()
    finally:
        close_database(db)


def test_a_database_at_version_2_gains_the_exported_at_column(control_db_url):

    from appliance.control.migrations import MIGRATIONS
    from appliance.control.models import SchemaVersion
    db = open_database(control_db_url)
    try:
        db.create_tables([SchemaVersion])
        for version, step in MIGRATIONS[:2]:
            step(db)
            SchemaVersion.create(version=version)
        db.execute_sql("ALTER TABLE state DROP COLUMN exported_at")  # the shape version 2 shipped with
        assert migrate(db)[0] == 3
        assert any(c.name == "exported_at" for c in db.get_columns("state"))
    finally:
        close_database(db)


def test_a_database_at_version_3_gains_hosts_and_per_host_state_copies(control_db_url):
    from appliance.control.migrations import MIGRATIONS
    from appliance.control.models import SchemaVersion, State
    db = open_database(control_db_url)
    try:
        db.create_tables([SchemaVersion])
        for version, step in MIGRATIONS[:3]:
            step(db)
            SchemaVersion.create(version=version)
        # the shape version 3 shipped with: one row per state, no host ids, no registry
        db.execute_sql("DROP TABLE IF EXISTS host")
        for table, column in (("volume", "host_id"), ("instance", "host_id"), ("base_image", "host_id"),
                              ("prepare_job", "host_id"), ("state", "build_seconds")):
            db.execute_sql(f"DROP INDEX IF EXISTS {table}_{column}")
            db.execute_sql(f"DROP INDEX IF EXISTS {table}_org_base_key_host_id")
            db.execute_sql(f"DROP INDEX IF EXISTS {table}_org_state_id_host")
            db.execute_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
        db.execute_sql("CREATE UNIQUE INDEX state_org_state_id ON state (org, state_id)")
        db.execute_sql("CREATE UNIQUE INDEX base_image_org_base_key ON base_image (org, base_key)")

        assert migrate(db)[0] == 4

        assert db.table_exists("host")
        row = {"org": "o", "state_id": "s1", "image_id": "i", "prepare_kind": "psql", "task_hash": "t"}
        State.create(**row, host="a")
        State.create(**row, host="b")  # the same state on a second host is a second copy
        assert State.select().where(State.state_id == "s1").count() == 2
    finally:
        close_database(db)


def test_tokens_from_before_version_5_stay_operator_tokens(control_db_url):
    from appliance.control.migrations import MIGRATIONS
    from appliance.control.models import ApiToken, SchemaVersion
    db = open_database(control_db_url)
    try:
        db.create_tables([SchemaVersion])
        for version, step in MIGRATIONS[:4]:
            step(db)
            SchemaVersion.create(version=version)
        db.execute_sql("DROP INDEX IF EXISTS api_token_token_id")
        for column in ("token_id", "global_admin", "created_by", "expires_at", "revoked_at", "last_used_at"):
            db.execute_sql(f"ALTER TABLE api_token DROP COLUMN {column}")
        db.execute_sql("INSERT INTO api_token (token_hash, org, role, name, created_at) "
                       "VALUES ('h1', 'default', 'admin', 'admin (token file)', CURRENT_TIMESTAMP)")

        assert migrate(db)[0] == 5

        row = ApiToken.get()
        assert row.global_admin and row.token_id.startswith("tok_") and row.expires_at is None
    finally:
        close_database(db)


def test_hosts_migrating_one_postgresql_control_db_at_once_apply_each_version_exactly_once(control_postgres):
    url = control_postgres.new_database_url()
    script = ("import json, sys; from appliance.control.db import open_database; "
              "from appliance.control.migrations import migrate; print(json.dumps(migrate(open_database(sys.argv[1]))))")
    hosts = [subprocess.Popen([sys.executable, "-c", script, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    results = [(host.wait(timeout=120), *host.communicate()) for host in hosts]
    assert [code for code, _, _ in results] == [0] * 4, [err for _, _, err in results]
    applied = [json.loads(out) for _, out, _ in results]
    assert sorted(v for versions in applied for v in versions) == list(range(1, latest_version() + 1))
