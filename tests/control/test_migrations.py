"""The Control DB schema is versioned from day one, on SQLite and PostgreSQL alike."""
from __future__ import annotations

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
        assert migrate(db) == [3]
        assert any(c.name == "exported_at" for c in db.get_columns("state"))
    finally:
        close_database(db)
