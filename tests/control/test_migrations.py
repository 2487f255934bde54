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
