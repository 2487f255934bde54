"""Baseline (a): a usable DSN the classic way, rebuilt from the scripts every time.

initdb into a fresh directory, pg_ctl start, psql -f schema.sql -f data.sql, then connect
over TCP and run ``select 1``. Stock settings (initdb and Postgres defaults): this is what a
CI job without sqlrs does.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from appliance.runtime.process import ProcessRuntime
from appliance.shell import Runner

from .workloads import Workload


@dataclass
class RebuildResult:
    seconds: float
    table_bytes: int  # heap of the generated table
    database_bytes: int


class ClassicRebuild:
    """One throwaway cluster per call; everything it starts is stopped in ``cleanup``."""

    def __init__(self, work_dir: Path, port: int):
        self.runner = Runner()
        self.runtime = ProcessRuntime(self.runner)  # only for bin_dir and the OS identity
        self.bin = self.runtime.bin_dir
        self.work_dir, self.port = work_dir, port
        self._clusters: list[Path] = []

    def _run(self, argv: list, **kw):
        return self.runner(argv, run_as=self.runtime.run_as, env=self.runtime.command_env(), cwd="/", **kw)

    def measure(self, workload: Workload, index: int) -> RebuildResult:
        cluster = self.work_dir / f"rebuild-{workload.name}-{index}"
        self._clusters.append(cluster)
        started = time.perf_counter()
        cluster.mkdir(mode=0o755)
        if self.runtime.run_as:
            os.chown(cluster, self.runtime.run_as.uid, self.runtime.run_as.gid)
        data = cluster / "data"
        self._run([self.bin / "initdb", "-D", data, "-U", "postgres", "--auth=trust"])
        self._run([self.bin / "pg_ctl", "-D", data, "-l", cluster / "log", "-w", "-o",
                   f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={cluster}",
                   "start"])
        self._run([self.bin / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                   "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                   "-f", workload.scripts_dir / "schema.sql", "-f", workload.scripts_dir / "data.sql"])
        with psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres") as conn:
            with conn.cursor() as cur:
                cur.execute("select 1")
                cur.fetchone()
                seconds = time.perf_counter() - started
                cur.execute("select pg_relation_size('big'), pg_database_size(current_database())")
                table_bytes, database_bytes = cur.fetchone()
        conn.close()
        self._discard(cluster)
        return RebuildResult(seconds, table_bytes, database_bytes)

    def _discard(self, cluster: Path) -> None:
        if (cluster / "data" / "postmaster.pid").exists():
            self._run([self.bin / "pg_ctl", "-D", cluster / "data", "-m", "immediate", "-w", "stop"], check=False)
        shutil.rmtree(cluster, ignore_errors=True)

    def cleanup(self) -> None:
        for cluster in self._clusters:
            self._discard(cluster)
