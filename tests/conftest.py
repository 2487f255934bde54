"""Real services for the whole suite: a throwaway PostgreSQL cluster (for the Control DB on
PostgreSQL) and a private redis-server. Nothing here is faked."""
from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
from redis import Redis

from appliance.runtime.process import ProcessRuntime
from appliance.service.redis_server import PrivateRedis
from appliance.shell import Runner


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def public_tmpdir(prefix: str) -> Path:
    """A tmp dir the unprivileged Postgres user can traverse (we run as root in CI)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def runner() -> Runner:
    return Runner()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    run_dir = public_tmpdir("sqlrs-redis-")
    server = PrivateRedis(run_dir)
    yield server.start()
    server.stop()
    shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def redis(redis_url: str) -> Redis:
    client = Redis.from_url(redis_url)
    client.flushall()
    return client


class ThrowawayPostgres:
    """A PostgreSQL server for the Control DB tests; each test gets a fresh database."""

    def __init__(self) -> None:
        self.dir = public_tmpdir("sqlrs-controldb-")
        self.port = free_tcp_port()
        self.runtime = ProcessRuntime(Runner())
        self.bin = self.runtime.bin_dir
        self.run_as = self.runtime.run_as
        self._names = itertools.count()

    def _run(self, argv: list[str]) -> None:
        Runner()(argv, run_as=self.run_as)

    def start(self) -> None:
        data = self.dir / "data"
        data.mkdir()
        if self.run_as:
            os.chown(data, self.run_as.uid, self.run_as.gid)
            os.chown(self.dir, self.run_as.uid, self.run_as.gid)
        self._run([str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"])
        self._run([str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"), "-w", "-o",
                   f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
                   f"-c fsync=off -c max_connections=200", "start"])

    def stop(self) -> None:
        subprocess.run([str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop"],
                       capture_output=True, user=self.run_as.uid if self.run_as else None)
        shutil.rmtree(self.dir, ignore_errors=True)

    def new_database_url(self) -> str:
        import psycopg2
        name = f"control_{os.getpid()}_{next(self._names)}"
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def control_postgres() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres()
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def control_db_url(request, tmp_path: Path) -> str:
    """Every model and API test runs against both Control DB engines."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'control.db'}"
    return request.getfixturevalue("control_postgres").new_database_url()
