"""Superuser connections over a clone's private socket: how a password is set on bind.

Binding a warm-pool clone is one ``ALTER ROLE``. Opening the connection for it — a backend
start and its first catalog reads, ~7 ms — would be most of that cost, so whoever binds (the
API, for hits answered at admission) can keep one connection open ahead of time per pooled
clone. Statement logging is switched off in the startup packet (a build step may have turned
it on with ALTER SYSTEM), so a verifier sent over such a connection never reaches a log.
"""
from __future__ import annotations

import contextlib
import secrets
import threading
from typing import Any

import psycopg2

from appliance.runtime.base import Endpoint

NO_STATEMENT_LOGGING = "-c log_statement=none -c log_min_duration_statement=-1 -c log_min_error_statement=panic"


def connect(endpoint: Endpoint):
    conn = psycopg2.connect(host=str(endpoint.socket_dir), port=endpoint.port, user=endpoint.user,
                            dbname="postgres", connect_timeout=10, options=NO_STATEMENT_LOGGING)
    conn.autocommit = True
    return conn


def store_verifier(conn, role: str, verifier: str) -> None:
    """Make ``verifier`` the role's password. Not ``ALTER ROLE … PASSWORD``: to refuse empty
    passwords, Postgres checks every new verifier against the empty string, re-deriving its key
    (4096 PBKDF2 iterations, 3-5 ms of the server's time on every bind). Our passwords are random
    tokens, never empty, so the verifier is written to ``pg_authid`` directly (what ALTER ROLE
    writes; ~0.3 ms). The role must exist: no row changed is an error."""
    with conn.cursor() as cur:
        cur.execute("UPDATE pg_catalog.pg_authid SET rolpassword = %s WHERE rolname = %s", (verifier, role))
        if cur.rowcount != 1:
            raise psycopg2.ProgrammingError(f"role {role!r} does not exist")


def _key(endpoint: Endpoint) -> tuple[str, int]:
    return str(endpoint.socket_dir), endpoint.port


class WarmConnections:
    """Connections opened ahead of time, one per endpoint, each handed out once."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, int], Any] = {}  # psycopg2 connections
        self._lock = threading.Lock()

    def keep(self, endpoints: list[Endpoint]) -> None:
        """Hold a warm connection to exactly these endpoints: open the missing, close the rest."""
        wanted = {_key(e): e for e in endpoints}
        with self._lock:
            stale = [self._open.pop(k) for k in list(self._open) if k not in wanted]
            missing = [e for k, e in wanted.items() if k not in self._open]
        for conn in stale:
            _close(conn)
        for endpoint in missing:
            try:
                conn = connect(endpoint)
                with conn.cursor() as cur:
                    cur.execute("SELECT 1 FROM pg_authid LIMIT 1")  # load the catalog caches ALTER ROLE uses
            except psycopg2.Error:
                continue  # starting, or gone: the next round tries again
            with self._lock:
                kept = self._open.setdefault(_key(endpoint), conn)
            if kept is not conn:
                _close(conn)

    def take(self, endpoint: Endpoint):
        """The warm connection to ``endpoint`` (now the caller's to close), or None."""
        with self._lock:
            conn = self._open.pop(_key(endpoint), None)
        return conn if conn is not None and not conn.closed else None


class ReadyPasswords:
    """Fresh random passwords whose SCRAM verifiers were computed ahead of time (4096 PBKDF2
    iterations, ~1 ms each): a bind takes one instead of deriving a key while a client waits.
    Each password is handed out once and exists nowhere else until it is."""

    def __init__(self, make_verifier, keep: int = 8) -> None:
        self._make_verifier, self._keep = make_verifier, keep
        self._ready: list[tuple[str, str]] = []
        self._handed_out: dict[str, str] = {}  # password -> verifier, until set_password uses it
        self._lock = threading.Lock()

    def fill(self) -> None:
        while True:
            with self._lock:
                if len(self._ready) >= self._keep:
                    return
            password = secrets.token_urlsafe(24)
            verifier = self._make_verifier(password)
            with self._lock:
                self._ready.append((password, verifier))

    def take(self) -> str:
        with self._lock:
            if self._ready:
                password, verifier = self._ready.pop()
                self._handed_out[password] = verifier
                return password
        return secrets.token_urlsafe(24)

    def verifier_for(self, password: str) -> str | None:
        with self._lock:
            return self._handed_out.pop(password, None)


def _close(conn) -> None:
    with contextlib.suppress(psycopg2.Error):
        conn.close()
