"""Helpers that talk to a test cluster the way clients and operators would."""
from __future__ import annotations

import os
from pathlib import Path

from appliance.runtime.base import Endpoint
from appliance.runtime.process import ProcessRuntime
from appliance.shell import Completed, Runner


def tcp_psql(runtime: ProcessRuntime, runner: Runner, endpoint: Endpoint, password: str, sql: str) -> Completed:
    """psql over TCP with a password, as a client of a handed-out instance would connect."""
    argv = [str(runtime.bin_dir / "psql"), "-X", "-w", "-At", "-h", endpoint.host, "-p", str(endpoint.port),
            "-U", endpoint.user, "-d", "postgres", "-c", sql]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGPASSWORD": password, "LC_ALL": "C",
           "PGSSLMODE": "disable"}
    return runner(argv, env=env, check=False, cwd="/")


def socket_psql(runtime: ProcessRuntime, runner: Runner, endpoint: Endpoint, sql: str, dbname: str = "postgres") -> str:
    argv = runtime.psql_command(endpoint, dbname) + ["-At"]
    return runner(argv, input=sql, env=runtime.command_env(), cwd="/", run_as=runtime.run_as).stdout.strip()


def controldata_state(runtime: ProcessRuntime, runner: Runner, volume: Path) -> str:
    out = runner([str(runtime.bin_dir / "pg_controldata"), str(volume / "pgdata")],
                 env=runtime.command_env(), cwd="/", run_as=runtime.run_as).stdout
    for line in out.splitlines():
        if line.startswith("Database cluster state:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no cluster state in pg_controldata output:\n{out}")
