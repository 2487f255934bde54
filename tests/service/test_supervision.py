"""`sqlrs-appliance up` as a supervisor: one per data dir, its children die with it, an earlier run's
leftovers are stopped (never a reused pid), a killed private Redis comes back, a child that keeps
dying waits longer each time, and a graceful stop gives every child one deadline."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.connections import redis_client
from appliance.service.processes import ChildRecord, record_children, stop_processes
from appliance.service.supervisor import Backoff, Supervised, Supervisor
from appliance.settings import Settings
from tests.e2e.harness import Appliance
from tests.support.polling import wait_until
from tests.support.ports import free_tcp_port
from tests.support.processes import IGNORES_SIGTERM, children_of, python_child, redis_servers_of, workers_of
from tests.support.tmpdirs import public_tmpdir

WORKERS = 2


@pytest.fixture
def appliance() -> Iterator[Appliance]:
    """A real `up` (copy store, private Redis), not started yet."""
    data_dir = public_tmpdir("sqlrs-supervision-") / "data"
    app = Appliance(data_dir, free_tcp_port(), port_range=(31500, 31520),
                    extra_env={"SQLRS_STORAGE_BACKEND": "copy", "SQLRS_WORKERS": str(WORKERS)})
    try:
        yield app
    finally:
        app.destroy()
        shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen]:
    proc = python_child("import time; time.sleep(600)")
    yield proc
    proc.kill()
    proc.wait()


def up_again(app: Appliance) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance.service.main", "up", "--listen", "127.0.0.1:1"],
                          env={**app.env, "SQLRS_DATA_DIR": str(app.data_dir)}, capture_output=True, text=True,
                          timeout=120)


def test_a_second_up_on_the_same_data_dir_is_refused_naming_the_first(appliance):
    appliance.start()
    result = up_again(appliance)
    assert result.returncode == 1
    assert f"another `sqlrs-appliance up` (pid {appliance.process.pid}) is serving {appliance.data_dir}" in result.stderr
    assert len(workers_of(appliance.data_dir)) == WORKERS


def test_every_child_dies_with_a_supervisor_killed_with_sigkill(appliance):
    appliance.start()
    assert len(children_of(appliance.data_dir)) == WORKERS + 1
    os.kill(appliance.process.pid, signal.SIGKILL)
    appliance.process.wait()
    wait_until(lambda: not children_of(appliance.data_dir), 60, "the children to die with their supervisor")


def record_as_child(data_dir: Path, proc: subprocess.Popen, *, start_offset: int = 0) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    record = ChildRecord.of("worker-0", proc.pid)
    record_children(data_dir, [ChildRecord(record.role, record.pid, record.start + start_offset, record.boot)])


def test_up_stops_what_an_earlier_up_of_the_data_dir_left_running(appliance, sleeper):
    record_as_child(appliance.data_dir, sleeper)
    appliance.start()
    assert sleeper.poll() == -signal.SIGTERM
    assert "left its worker-0 running" in appliance.log_text()


def test_up_leaves_alone_a_process_that_only_shares_a_recorded_pid(appliance, sleeper):
    record_as_child(appliance.data_dir, sleeper, start_offset=-1)  # the pid, reused by another process
    appliance.start()
    assert sleeper.poll() is None


def test_a_killed_private_redis_is_started_again_on_the_same_socket_with_the_same_password(appliance):
    appliance.start()
    (killed,) = redis_servers_of(appliance.data_dir)
    password = (appliance.data_dir / "redis.password").read_text()
    os.kill(killed, signal.SIGKILL)
    wait_until(lambda: redis_servers_of(appliance.data_dir) - {killed}, 60, "a new redis-server")
    client = redis_client(Settings(data_dir=appliance.data_dir))
    wait_until(lambda: _pings(client), 60, "the new redis-server to answer")
    assert (appliance.data_dir / "redis.password").read_text() == password
    assert appliance.get("/v1/ready").status_code == 200


def _pings(client) -> bool:
    try:
        return client.ping()
    except Exception:
        return False


def test_a_child_that_keeps_dying_waits_longer_before_each_start(tmp_path):
    starts: list[float] = []

    def spawn() -> subprocess.Popen:
        starts.append(time.monotonic())
        return python_child("raise SystemExit(3)")

    child = Supervised("worker-0", spawn, Backoff(first=0.2, cap=0.8))
    supervisor = Supervisor(tmp_path, None, [child])
    supervisor.start()
    try:
        wait_until(lambda: len(starts) >= 5, 60, "five starts")
    finally:
        supervisor.stop()
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert [g >= least for g, least in zip(gaps, [0.2, 0.4, 0.8, 0.8])] == [True] * 4, gaps


def test_the_backoff_starts_over_after_a_healthy_run():
    backoff = Backoff(first=1.0, cap=4.0, healthy_after=30.0)
    assert [backoff.delay(ran_for=0.1) for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
    assert backoff.delay(ran_for=30.0) == 1.0


def test_a_graceful_stop_gives_every_child_one_deadline_not_one_each():
    children = [python_child(IGNORES_SIGTERM, stdout=subprocess.PIPE) for _ in range(4)]
    for child in children:
        child.stdout.readline()  # its SIGTERM handler is in place
    started = time.monotonic()
    stop_processes(children, grace=3.0)
    elapsed = time.monotonic() - started
    assert [c.returncode for c in children] == [-signal.SIGKILL] * 4
    assert elapsed < 2 * 3.0, f"{elapsed:.1f} s: the children were waited for in turn"  # in turn: 12 s
