"""Connecting the Control DB (SQLite in the embedded default, PostgreSQL for teams)."""
from __future__ import annotations

from pathlib import Path

import peewee
from playhouse.db_url import connect as _connect_url

from .models import ALL_MODELS, database_proxy


def open_database(url: str) -> peewee.Database:
    """Open ``url`` and bind every model to it.

    SQLite is shared by the API, the workers and the reconciler (separate processes), so it
    runs in WAL mode with a generous busy timeout instead of failing on a brief write lock.
    """
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        db = peewee.SqliteDatabase(
            url[len("sqlite:///"):],
            pragmas={"journal_mode": "wal", "busy_timeout": 30000, "foreign_keys": 1,
                     "synchronous": "normal"},
            timeout=30,
        )
    else:
        db = _connect_url(url)
    database_proxy.initialize(db)
    return db


def write_transaction(db: peewee.Database):
    """A transaction that will write. On SQLite it takes the write lock up front (BEGIN
    IMMEDIATE): a deferred transaction that reads first and writes later cannot wait for the
    lock and fails at once with "database is locked" when another process wrote meanwhile."""
    if isinstance(db, peewee.DatabaseProxy):
        db = db.obj
    if isinstance(db, peewee.SqliteDatabase):
        return db.atomic("IMMEDIATE")
    return db.atomic()


def close_database(db: peewee.Database) -> None:
    if not db.is_closed():
        db.close()


__all__ = ["open_database", "close_database", "write_transaction", "ALL_MODELS"]
