"""Two hosts on one machine: two real appliances (`up` each, own btrfs store, own port range,
own host id) sharing one PostgreSQL Control DB, one Redis and one object store.

Placement sends a prepare to the host holding its longest cached prefix; a host that is
drained or stops sending heartbeats gets no work, and what it held is rebuilt or imported
elsewhere."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support.appliance import FAST_RECOVERY
from tests.support.ports import free_tcp_port
from tests.support.prepares import executes
from tests.support.psql import psql
from tests.support.tmpdirs import public_tmpdir

from .harness import Appliance

RANGES = {"host-a": (29100, 29149), "host-b": (29150, 29199)}
DOWN_AFTER_SECONDS = 8


@pytest.fixture(scope="module")
def cluster(control_postgres, redis_url):
    shared = public_tmpdir("sqlrs-two-hosts-")
    env = {**FAST_RECOVERY, "SQLRS_DATABASE_URL": control_postgres.new_database_url(), "SQLRS_REDIS_URL": redis_url,
           "SQLRS_ARTIFACTS_URL": f"file://{shared / 'objects'}",
           "SQLRS_SIGNING_KEY_FILE": str(shared / "signing.key"),  # one installation: one signing key
           "SQLRS_HOST_DOWN_AFTER_SECONDS": str(DOWN_AFTER_SECONDS), "SQLRS_WORKERS": "1"}
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, shared, ignore_errors=True)
        apps = {}
        for host_id, ports in RANGES.items():  # one after the other: the first one migrates the Control DB
            app = Appliance(shared / host_id, free_tcp_port(), port_range=ports,
                            extra_env={**env, "SQLRS_HOST_ID": host_id})
            stack.callback(app.destroy, keep_logs_in=Path("/tmp/sqlrs-e2e-logs") / f"two-hosts-{host_id}")
            apps[host_id] = app.start()
        yield apps


def hosts_cli(app: Appliance, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance.service.main", "hosts", *args], env=app.env,
                          capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def drained(app: Appliance, host_id: str):
    assert hosts_cli(app, "drain", host_id, "--reason", "test").returncode == 0
    try:
        yield
    finally:
        assert hosts_cli(app, "undrain", host_id).returncode == 0


def steps(*names: str, marker: str, sleep: float = 0) -> list[str]:
    """One -c step per name, each creating a table (the first one sleeping, to be costly)."""
    args = []
    for index, name in enumerate(names):
        pause = f"select pg_sleep({sleep}); " if sleep and index == 0 else ""
        args += ["-c", f"{pause}create table {name} (id int); -- {marker}"]
    return args


def on_host(status: dict, host_id: str) -> bool:
    low, high = RANGES[host_id]
    return low <= int(status["result"]["dsn"].rsplit(":", 1)[1].split("/")[0]) <= high


def log_lines(app: Appliance, job_id: str) -> list[str]:
    return [e["message"] for e in app.events(job_id) if e["type"] == "log"]


def state_hosts(app: Appliance, state_id: str) -> list[str]:
    return app.get(f"/v1/states/{state_id}").json()["hosts"]


def test_both_hosts_are_registered_and_up(cluster):
    listing = hosts_cli(cluster["host-a"], "--json")
    assert listing.returncode == 0, listing.stderr
    assert "host-a" in listing.stdout and "host-b" in listing.stdout
    assert listing.stdout.count('"status": "up"') == 2


def test_a_prepare_whose_prefix_only_host_b_holds_runs_on_host_b(cluster, tmp_path):
    a, marker = cluster["host-a"], uuid.uuid4().hex
    with drained(a, "host-a"):
        seeded = a.prepare(steps("s1", "s2", marker=marker), tmp_path)
    assert seeded["status"] == "succeeded", seeded["error"]
    assert on_host(seeded, "host-b")

    grown = a.prepare(steps("s1", "s2", "s3", marker=marker), tmp_path)  # submitted to host A's API

    assert grown["status"] == "succeeded", grown["error"]
    assert [t["cached"] for t in executes(grown)] == [True, True, False]
    assert on_host(grown, "host-b")
    assert any("placed on host host-b: 2 of 3 step(s) cached there" in line for line in log_lines(a, grown["job_id"]))
    assert state_hosts(a, executes(grown)[-1]["output_state_id"]) == ["host-b"]
    assert psql(grown["result"]["dsn"], "select count(*) from s3").stdout.strip() == "0"


def test_with_host_b_drained_the_prepare_is_rebuilt_on_host_a(cluster, tmp_path):
    a, b, marker = cluster["host-a"], cluster["host-b"], uuid.uuid4().hex
    with drained(a, "host-a"):
        assert on_host(a.prepare(steps("r1", "r2", marker=marker), tmp_path), "host-b")

    with drained(a, "host-b"):
        rebuilt = b.prepare(steps("r1", "r2", "r3", marker=marker), tmp_path)  # even through B's own API

    assert rebuilt["status"] == "succeeded", rebuilt["error"]
    assert [t["cached"] for t in executes(rebuilt)] == [False, False, False]
    assert on_host(rebuilt, "host-a")
    assert state_hosts(a, executes(rebuilt)[1]["output_state_id"]) == ["host-a", "host-b"]
    assert psql(rebuilt["result"]["dsn"], "select count(*) from r3").stdout.strip() == "0"


def test_with_host_b_drained_a_state_it_exported_is_imported_on_host_a(cluster, tmp_path):
    a, marker = cluster["host-a"], uuid.uuid4().hex
    with drained(a, "host-a"):
        seeded = a.prepare(steps("x1", "x2", marker=marker, sleep=3), tmp_path)  # x1 took 3 s to build
    chain = [t["output_state_id"] for t in executes(seeded)]
    for state_id in chain:  # asked of host A's API, which holds no copy: host B's worker streams it
        exported = a.post(f"/v1/states/{state_id}/export")
        assert exported.status_code == 202 and exported.json()["host"] == "host-b", exported.text
        transfer = wait_for_transfer(a, exported.json()["status_url"])
        assert transfer["status"] == "succeeded", transfer

    with drained(a, "host-b"):
        served = a.prepare(steps("x1", "x2", "x3", marker=marker, sleep=3), tmp_path)

    assert served["status"] == "succeeded", served["error"]
    assert on_host(served, "host-a")
    lines = log_lines(a, served["job_id"])
    assert any(line.startswith("import: 2 state(s)") for line in lines), lines
    assert [t["cached"] for t in executes(served)] == [True, True, False]
    assert state_hosts(a, chain[1]) == ["host-a", "host-b"]
    assert psql(served["result"]["dsn"], "select count(*) from x1").stdout.strip() == "0"


def wait_for_transfer(app: Appliance, url: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while (transfer := app.get(url).json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"transfer still {transfer['status']}"
        time.sleep(0.2)
    return transfer


def test_an_instance_deleted_through_the_other_hosts_api_is_torn_down_by_its_own_host(cluster, tmp_path):
    a, b = cluster["host-a"], cluster["host-b"]
    with drained(a, "host-a"):
        on_b = a.prepare(steps("d1", marker=uuid.uuid4().hex), tmp_path)
    instance_id, dsn = on_b["result"]["instance_id"], on_b["result"]["dsn"]
    assert psql(dsn, "select 1").returncode == 0
    clones_on_b = set((b.data_dir / "store").glob("orgs/*/volumes/*"))

    deleted = a.delete(f"/v1/instances/{instance_id}")

    assert deleted.status_code == 200, deleted.text
    deadline = time.monotonic() + 30
    while a.get(f"/v1/instances/{instance_id}").status_code != 404:
        assert time.monotonic() < deadline, "host B never finished the deletion"
        time.sleep(0.5)
    assert psql(dsn, "select 1").returncode != 0  # its Postgres is gone
    assert len(clones_on_b - set((b.data_dir / "store").glob("orgs/*/volumes/*"))) == 1  # and its clone


def test_a_job_queued_on_a_host_that_hangs_is_moved_and_succeeds(cluster, tmp_path):
    a, b = cluster["host-a"], cluster["host-b"]
    with drained(a, "host-a"):
        assert on_host(a.prepare(steps("k1", marker=(marker := uuid.uuid4().hex)), tmp_path), "host-b")
    os.killpg(b.process.pid, signal.SIGSTOP)  # host B hangs: its workers take nothing, its heartbeat stops
    try:
        response = a.submit(steps("k1", "k2", marker=marker), tmp_path)  # B still looks up: placed there
        assert response.status_code == 201, response.text
        finished = a.wait(response.json()["job_id"], timeout=DOWN_AFTER_SECONDS + 90)
    finally:
        os.killpg(b.process.pid, signal.SIGCONT)

    assert finished["status"] == "succeeded", finished["error"]
    assert on_host(finished, "host-a")
    assert any("host host-b is unavailable; placed again on host host-a" in line
               for line in log_lines(a, finished["job_id"]))
