"""`sqlrs-appliance up` with its own private Redis, its parts SIGKILLed: the supervisor alone (its
children die with it, and the next `up` runs no duplicates), and the private redis-server (it is
started again on the same socket, queued jobs succeed, the running one ends cleanly, and the
workers do not crash-loop)."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.settings import Settings
from tests.e2e.harness import Appliance
from tests.support.appliance import FAST_RECOVERY
from tests.support.docker import ensure_image, require_docker
from tests.support.polling import wait_until
from tests.support.ports import free_tcp_port
from tests.support.processes import children_of, redis_servers_of, workers_of
from tests.support.tmpdirs import public_tmpdir

from .rig import PORT_RANGES, FaultRig, Outcome, tear_down

WORKERS = 2
RESTART_LINE = "exited with"  # the supervisor's line for each child that died (see Supervised.schedule_restart)


@pytest.fixture(scope="module", params=["process", "docker"])
def rig(request, control_postgres) -> Iterator[FaultRig]:
    """The fault rig's appliance, but with the private redis-server `up` starts and supervises."""
    with contextlib.ExitStack() as stack:
        env = {**FAST_RECOVERY, "SQLRS_ORPHAN_GRACE_SECONDS": "3", "SQLRS_WORKERS": str(WORKERS)}
        if request.param == "docker":
            require_docker()
            ensure_image(Settings.model_fields["docker_image"].default)
            env["SQLRS_RUNTIME"] = "docker"
        database_url = control_postgres.new_database_url()
        env["SQLRS_DATABASE_URL"] = database_url
        port_range = next(PORT_RANGES)
        app = Appliance(public_tmpdir("sqlrs-faults-") / "data", free_tcp_port(), port_range=port_range,
                        extra_env=env)
        stack.callback(shutil.rmtree, app.data_dir.parent, ignore_errors=True)
        rig = FaultRig(app, None, database_url, port_range)
        stack.callback(tear_down, rig, Path("/tmp/sqlrs-e2e-logs") / f"faults-supervisor-kills-{request.param}")
        app.start()
        rig.runtime = request.param
        yield rig


def restarts_logged(rig: FaultRig) -> int:
    return sum(1 for line in rig.app.log_text().splitlines() if "worker-" in line and RESTART_LINE in line)


def test_supervisor_killed_alone_and_started_again(rig: FaultRig, outcome: Outcome, tmp_path):
    outcome.kind = "supervisor SIGKILLed alone, `up` again"
    jobs = [rig.submit(tmp_path, "select pg_sleep(1);", "create table t (i int);") for _ in range(4)]
    wait_until(lambda: rig.query("select 1 from prepare_job where status = 'running'"), 60, "a running job")
    before = children_of(rig.app.data_dir)
    rig.kill_supervisor_only()
    outcome.injected += 1
    rig.app.start()
    assert len(workers_of(rig.app.data_dir)) == WORKERS, "duplicate workers"
    assert len(redis_servers_of(rig.app.data_dir)) == 1, "a leftover redis-server"
    assert not before & children_of(rig.app.data_dir), "a child of the killed supervisor lives on"
    final = rig.account(outcome, jobs)
    for status in final.values():  # the jobs running at the kill died with their worker; the rest ran
        assert status["status"] == "succeeded" or status["error"]["code"] == "internal_error", status
    outcome.notes.append(f"jobs succeeded: {sum(s['status'] == 'succeeded' for s in final.values())}/4")
    after = rig.account(outcome, [rig.submit(tmp_path, "create table after_the_restart (i int);")])
    assert [s["status"] for s in after.values()] == ["succeeded"], after
    assert outcome.clean, outcome


def test_private_redis_killed_with_jobs_queued_and_running(rig: FaultRig, outcome: Outcome, tmp_path):
    outcome.kind = "private redis SIGKILLed (1 job running, 4 queued)"
    try:
        jobs = rig.one_running_four_queued(tmp_path)
        running = {r[0] for r in rig.query("select job_id from prepare_job where status = 'running'")}
        (killed,) = redis_servers_of(rig.app.data_dir)
        restarts_before = restarts_logged(rig)
        os.kill(killed, signal.SIGKILL)
        outcome.injected += 1
        final = rig.account(outcome, jobs, bound=120)
    finally:
        wait_until(lambda: rig.app.get("/v1/ready").status_code == 200, 60, "a ready appliance")
        assert rig.app.put("/v1/orgs/default/quota", json={"max_running_jobs": None}).status_code == 200
    assert len(redis_servers_of(rig.app.data_dir) - {killed}) == 1, "redis-server was not started again"
    for job_id, status in final.items():
        if job_id in running:  # completed, or failed saying why
            assert status["status"] == "succeeded" or status["error"]["code"] == "queue_unavailable", status
        else:
            assert status["status"] == "succeeded", status
    restarts = restarts_logged(rig) - restarts_before
    outcome.notes.append(f"worker restarts after the kill: {restarts}")
    assert restarts <= WORKERS, f"workers crash-looped: {restarts} restarts"
    assert outcome.clean, outcome
