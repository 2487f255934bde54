"""Connecting the Control DB (SQLite in the embedded default, PostgreSQL for teams)."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, TypeVar

import peewee
from playhouse.db_url import parse as _parse_url
from playhouse.shortcuts import ReconnectMixin

from .models import ALL_MODELS, database_proxy


class ReconnectingPostgresqlDatabase(ReconnectMixin, peewee.PostgresqlDatabase):
    """After a Control-DB restart every pooled thread holds a dead connection; a statement
    outside a transaction reconnects and runs again once. Inside a transaction the error goes
    up (a silent retry could lose half of it); the caller sees ``control_db_unavailable``."""

    reconnect_errors = (
        (peewee.OperationalError, "server closed the connection"),
        (peewee.OperationalError, "terminating connection"),
        (peewee.OperationalError, "ssl syscall error"),
        (peewee.OperationalError, "no connection to the server"),
        (peewee.OperationalError, "could not receive data"),
        (peewee.InterfaceError, "connection already closed"),
    )


UNAVAILABLE = (peewee.OperationalError, peewee.InterfaceError)  # what a lost or locked Control DB raises
log = logging.getLogger(__name__)
T = TypeVar("T")


def retry_while_unavailable(fn: Callable[[], T], *, what: str, give_up_after: float,
                            first_wait: float = 0.5, longest_wait: float = 8.0) -> T:
    """Workers outlive a Control-DB restart: wait with exponential back-off instead of failing
    the work in hand, and give up (raising the last error) after ``give_up_after`` seconds."""
    deadline, wait = time.monotonic() + give_up_after, first_wait
    while True:
        try:
            return fn()
        except UNAVAILABLE as exc:
            if time.monotonic() + wait > deadline:
                raise
            log.warning("Control DB unavailable while %s (%s); retrying in %.1f s", what,
                        first_line(exc), wait)
            time.sleep(wait)
            wait = min(wait * 2, longest_wait)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
    elif url.startswith(("postgresql://", "postgres://")):
        db = ReconnectingPostgresqlDatabase(**_parse_url(url))
    else:
        raise ValueError(f"unsupported Control DB URL scheme: {url.split(':', 1)[0]}")
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
