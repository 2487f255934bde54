"""psql, the client a user would run, against a DSN the appliance handed out; and whether a
connection is encrypted, as the server itself reports it."""
from __future__ import annotations

import subprocess

import psycopg2


def psql(dsn: str, sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", dsn, "-c", sql],
                          capture_output=True, text=True, timeout=30)


def ssl_in_use(*dsn: str, **connect) -> bool:
    """Whether the server says this connection (a DSN, or psycopg2's keywords) uses TLS."""
    with psycopg2.connect(*dsn, connect_timeout=10, **connect) as conn, conn.cursor() as cur:
        cur.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
        (on,) = cur.fetchone()
    conn.close()
    return on
