"""Connecting the Control DB (SQLite in the embedded default, PostgreSQL for teams)."""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import peewee
from playhouse.db_url import parse as _parse_url
from playhouse.shortcuts import ReconnectMixin

from appliance.control import wakeups
from appliance.control.models import ALL_MODELS, database_proxy

UNAVAILABLE = (peewee.OperationalError, peewee.InterfaceError)  # what a lost or locked Control DB raises
log = logging.getLogger(__name__)
T = TypeVar("T")


def open_database(url: str, *, wait_seconds: float = 0.0) -> peewee.Database:
    """Open ``url`` and bind every model to it.

    SQLite is shared by the API, the workers and the reconciler (separate processes), so it
    runs in WAL mode with a generous busy timeout instead of failing on a brief write lock.
    PostgreSQL statements wait up to ``wait_seconds`` for an unreachable server (workers).
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
        db.wait_seconds = wait_seconds
    else:
        raise ValueError(f"unsupported Control DB URL scheme: {url.split(':', 1)[0]}")
    database_proxy.initialize(db)
    return db


class ReconnectingPostgresqlDatabase(ReconnectMixin, peewee.PostgresqlDatabase):
    """After a Control-DB restart every pooled thread holds a dead connection; a statement
    outside a transaction reconnects and runs again once. Inside a transaction the error goes
    up (a silent retry could lose half of it); the caller sees ``control_db_unavailable``.

    With ``wait_seconds`` (workers: ``control_db_retry_seconds``), a statement or BEGIN that
    finds the server unreachable waits for it with back-off instead of failing, so a job in
    flight rides out a Control-DB restart. The API keeps 0: it answers 503 at once."""

    reconnect_errors = (
        (peewee.OperationalError, "server closed the connection"),
        (peewee.OperationalError, "terminating connection"),
        (peewee.OperationalError, "ssl syscall error"),
        (peewee.OperationalError, "no connection to the server"),
        (peewee.OperationalError, "could not receive data"),
        (peewee.InterfaceError, "connection already closed"),
    )
    unreachable = ("connection refused", "could not connect", "the database system is starting up",
                   "not yet accepting connections",
                   "the database system is shutting down", "the database system is in recovery mode",
                   "server closed the connection", "terminating connection", "no connection to the server",
                   "connection already closed", "timeout expired")
    wait_seconds = 0.0

    def _reconnect(self, func, *args, **kwargs):
        def attempt():
            return super(ReconnectingPostgresqlDatabase, self)._reconnect(func, *args, **kwargs)
        return retry_while_unavailable(attempt, what="running a statement", give_up_after=self.wait_seconds,
                                       retryable=self._worth_waiting_for)

    def _worth_waiting_for(self, exc: BaseException) -> bool:
        return not self.in_transaction() and any(s in str(exc).lower() for s in self.unreachable)


def retry_while_unavailable(fn: Callable[[], T], *, what: str, give_up_after: float,
                            retryable: Callable[[BaseException], bool] = lambda exc: True,
                            first_wait: float = 0.5, longest_wait: float = 2.0) -> T:
    """Workers outlive a Control-DB restart: wait with exponential back-off instead of failing
    the work in hand, and give up (raising the last error) after ``give_up_after`` seconds."""
    deadline, wait = time.monotonic() + give_up_after, first_wait
    while True:
        try:
            return fn()
        except UNAVAILABLE as exc:
            if not retryable(exc) or time.monotonic() + wait > deadline:
                raise
            log.warning("Control DB unavailable while %s (%s); retrying in %.1f s", what, first_line(exc), wait)
            time.sleep(wait)
            wait = min(wait * 2, longest_wait)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def write_transaction(db: peewee.Database) -> Iterator[None]:
    """A transaction that will write. On SQLite it takes the write lock up front (BEGIN
    IMMEDIATE): a deferred transaction that reads first and writes later cannot wait for the
    lock and fails at once with "database is locked" when another process wrote meanwhile.
    Wake-ups announced inside it go out once the outermost transaction has committed."""
    if isinstance(db, peewee.DatabaseProxy):
        db = db.obj
    try:
        with db.atomic("IMMEDIATE") if isinstance(db, peewee.SqliteDatabase) else db.atomic():
            yield
    except BaseException:
        if not db.in_transaction():
            wakeups.discard()
        raise
    if not db.in_transaction():
        wakeups.flush()


def close_database(db: peewee.Database) -> None:
    if not db.is_closed():
        db.close()


__all__ = ["open_database", "close_database", "write_transaction", "retry_while_unavailable", "ALL_MODELS"]
