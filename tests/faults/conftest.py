"""The fault suite's stack, one per runtime, and its table (printed at the end of the run)."""
from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.settings import Settings
from tests.e2e.harness import Appliance
from tests.support.appliance import FAST_RECOVERY
from tests.support.docker import ensure_image, require_docker
from tests.support.ports import free_tcp_port
from tests.support.tmpdirs import public_tmpdir

from .rig import PORT_RANGES, FaultRig, Outcome, RedisServer, tear_down

OUTCOMES: list[tuple[str, Outcome]] = []


@pytest.fixture(scope="module", params=["process", "docker"])
def rig(request, control_postgres) -> Iterator[FaultRig]:
    runtime = request.param
    if os.geteuid() != 0 and os.environ.get("CI"):
        pytest.fail("the fault suite runs as root in CI (it mounts a btrfs image)")
    with contextlib.ExitStack() as stack:
        env = {**FAST_RECOVERY, "SQLRS_ORPHAN_GRACE_SECONDS": "3",
               "SQLRS_FAILPOINTS": '["clone", "snapshot", "instance-start"]'}
        if runtime == "docker":
            require_docker()
            ensure_image(Settings.model_fields["docker_image"].default)
            env["SQLRS_RUNTIME"] = "docker"
        redis = RedisServer()
        redis.start()
        stack.callback(redis.kill)
        database_url = control_postgres.new_database_url()
        env.update({"SQLRS_REDIS_URL": redis.url, "SQLRS_DATABASE_URL": database_url})
        port_range = next(PORT_RANGES)
        app = Appliance(public_tmpdir("sqlrs-faults-") / "data", free_tcp_port(), port_range=port_range,
                        extra_env=env)
        stack.callback(shutil.rmtree, app.data_dir.parent, ignore_errors=True)
        rig = FaultRig(app, redis, database_url, port_range)
        module = request.module.__name__.rsplit(".", 1)[-1]
        stack.callback(tear_down, rig, Path("/tmp/sqlrs-e2e-logs") / f"faults-{module}-{runtime}")
        app.start()
        rig.runtime = runtime
        yield rig


@pytest.fixture
def outcome(request, rig) -> Iterator[Outcome]:
    """The test's row in the table; the test fills it in and asserts it is clean."""
    row = Outcome(kind=request.node.originalname.removeprefix("test_").replace("_", " "))
    yield row
    OUTCOMES.append((rig.runtime, row))


def pytest_terminal_summary(terminalreporter) -> None:
    if not OUTCOMES:
        return
    write = terminalreporter.write_line
    write("")
    write("fault-injection outcomes (each row: faults injected, then every job settled and the reconciler ran)")
    write("| runtime | fault | injected | jobs | lost | stuck | leaked volumes | leaked processes "
          "| leaked containers | leaked ports | bad states |")
    write("|---|---|---|---|---|---|---|---|---|---|---|")
    for runtime, o in OUTCOMES:
        containers = "n/a" if o.leaked_containers is None else o.leaked_containers
        write(f"| {runtime} | {o.kind} | {o.injected} | {o.jobs} | {o.lost} | {o.stuck} | {o.leaked_volumes} "
              f"| {o.leaked_processes} | {containers} | {o.leaked_ports} | {o.bad_states} |")
    for runtime, o in OUTCOMES:
        for note in o.notes:
            write(f"  {runtime} / {o.kind}: {note}")
