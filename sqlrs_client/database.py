"""A database handed out by the appliance, as a program or a test uses it: its DSN, and the
environment libpq and most frameworks read it from."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Database:
    dsn: str  # postgres://user:password@host:port/dbname
    instance_id: str
    state_id: str

    @property
    def env(self) -> dict[str, str]:
        return database_env(self.dsn)

    def __repr__(self) -> str:  # never the password, not even in a failed test's report
        return f"Database(instance_id={self.instance_id!r}, state_id={self.state_id!r})"


def database_env(dsn: str) -> dict[str, str]:
    """``DATABASE_URL`` and the libpq variables (``PGHOST``, ``PGPORT``, ``PGUSER``,
    ``PGPASSWORD``, ``PGDATABASE``) for ``dsn``."""
    parts = urlsplit(dsn)
    env = {"DATABASE_URL": dsn, "PGHOST": parts.hostname or "", "PGPORT": str(parts.port or 5432),
           "PGDATABASE": parts.path.lstrip("/") or "postgres"}
    if parts.username is not None:
        env["PGUSER"] = unquote(parts.username)
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
    return env
