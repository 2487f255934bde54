"""A throwaway PostgreSQL server (for the Control DB on PostgreSQL): its own initdb, SCRAM on
every connection, a fresh database per test."""
from __future__ import annotations

import itertools
import os
import secrets
import shutil
import subprocess

from appliance.runtime.process import ProcessRuntime
from appliance.shell import Runner
from tests.support.ports import free_tcp_port
from tests.support.tmpdirs import public_tmpdir


class ThrowawayPostgres:
    """A PostgreSQL server for the Control DB tests; each test gets a fresh database."""

    def __init__(self) -> None:
        self.dir = public_tmpdir("sqlrs-controldb-")
        self.port = free_tcp_port()
        self.password = secrets.token_hex(16)  # SCRAM on every connection: no trust, like a real site
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
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.run_as:
            os.chown(pwfile, self.run_as.uid, self.run_as.gid)
        try:
            self._run([str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256",
                       f"--pwfile={pwfile}", "--no-sync"])
        finally:
            pwfile.unlink()
        self.resume()

    def halt(self) -> None:
        """Stop the server as a crash would (clients' connections die), keeping its data."""
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop"])

    def resume(self) -> None:
        data = self.dir / "data"
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
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", password=self.password,
                                dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{name}"
