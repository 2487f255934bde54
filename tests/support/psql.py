"""psql, the client a user would run, against a DSN the appliance handed out."""
from __future__ import annotations

import subprocess


def psql(dsn: str, sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", dsn, "-c", sql],
                          capture_output=True, text=True, timeout=30)
