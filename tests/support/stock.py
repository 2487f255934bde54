"""A stock PostgreSQL cluster, made as a packager's initdb makes it (bootstrap superuser
``postgres``), and plain ``pg_dump`` files of it: what users bring from their own servers."""
from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(argv: list, **kwargs) -> subprocess.CompletedProcess:
    account = pwd.getpwnam("postgres")  # the Debian packages' account, as on a stock server
    return subprocess.run([os.fspath(a) for a in argv], user=account.pw_uid, group=account.pw_gid,
                          extra_groups=[], capture_output=True, text=True, check=True, cwd="/", timeout=120,
                          env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"})


@contextlib.contextmanager
def stock_cluster() -> Iterator[Path]:
    """A running stock cluster; yields its socket directory (port 5432 in it)."""
    base = Path(tempfile.mkdtemp(prefix="sqlrs-stock-", dir="/tmp"))
    os.chmod(base, 0o755)
    shutil.chown(base, "postgres", "postgres")
    pgdata, sockets = base / "pgdata", base / "run"
    try:
        _as_postgres([BIN / "initdb", "-D", pgdata, "--no-sync", "--no-instructions"])
        _as_postgres(["mkdir", sockets])
        _as_postgres([BIN / "pg_ctl", "-D", pgdata, "-w", "-l", base / "log", "-o",
                      f"-c listen_addresses='' -c unix_socket_directories={sockets}", "start"])
        yield sockets
    finally:
        subprocess.run([BIN / "pg_ctl", "-D", pgdata, "-m", "immediate", "stop"], capture_output=True,
                       user="postgres", cwd="/")
        shutil.rmtree(base, ignore_errors=True)


def stock_psql(sockets: Path, sql: str) -> str:
    return _as_postgres([BIN / "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", sockets,
                         "-d", "postgres", "-c", sql]).stdout


def plain_dump(sockets: Path, *options: str) -> str:
    """``pg_dump`` of the ``postgres`` database as the stock superuser, in plain SQL."""
    return _as_postgres([BIN / "pg_dump", "-h", sockets, *options, "postgres"]).stdout
