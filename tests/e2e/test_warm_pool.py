"""The warm pool in a real appliance: cache hits bind running clones with fresh credentials."""
from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.support.appliance import appliance_on
from tests.support.polling import wait_until
from tests.support.prepares import executes
from tests.support.psql import psql


@pytest.fixture(scope="module")
def appliance(request):
    yield from appliance_on(request, "btrfs", {"SQLRS_WARM_POOL_SIZE": "2"})


def pooled_total(appliance) -> int:
    found = re.search(r'^sqlrs_instances\{status="pooled"\} ([0-9.]+)$', appliance.get("/metrics").text, re.M)
    return int(float(found.group(1))) if found else 0


def settled_pooled_total(appliance, quiet_seconds: float = 3.0) -> int:
    """The pool size once refills have stopped changing it (earlier tests' pools refill too)."""
    last, since = pooled_total(appliance), time.monotonic()
    while time.monotonic() - since < quiet_seconds:
        time.sleep(0.25)
        if (now := pooled_total(appliance)) != last:
            last, since = now, time.monotonic()
    return last


def wait_for_pooled(appliance, total: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while pooled_total(appliance) != total:
        assert time.monotonic() < deadline, f"the warm pool did not reach {total} (has {pooled_total(appliance)})"
        time.sleep(0.2)


def test_a_cache_hit_binds_a_pooled_clone_with_its_own_password(appliance, scripts):
    before = settled_pooled_total(appliance)
    first = appliance.prepare(["-f", "schema.sql", "-f", "data.sql"], scripts)
    wait_for_pooled(appliance, before + 2)  # only the state handed out is hot, not its parent
    second = appliance.prepare(["-f", "schema.sql", "-f", "data.sql"], scripts)
    messages = [e.get("message") or "" for e in appliance.events(second["job_id"])]
    assert "warm pool: bound a running clone" in messages
    dsn = second["result"]["dsn"]
    assert psql(dsn, "select count(*) from items").stdout.strip() == "100"
    assert dsn != first["result"]["dsn"]


def test_pooled_clones_are_invisible_and_unusable_until_bound(appliance, scripts):
    appliance.prepare(["-f", "schema.sql"], scripts)
    listed = appliance.get("/v1/instances").json()
    assert all(i["status"] != "pooled" for i in listed)
    assert all(i.get("dsn") for i in listed if i["status"] == "active")


def test_deleting_a_state_empties_its_pool(appliance, scripts):
    before = settled_pooled_total(appliance)
    status = appliance.prepare(["-f", "schema.sql"], scripts)
    state_id = executes(status)[0]["output_state_id"]
    wait_for_pooled(appliance, before + 2)
    answer = appliance.delete(f"/v1/states/{state_id}", params={"recurse": "true", "force": "true"})
    assert answer.status_code == 200 and answer.json()["outcome"] == "deleted"
    assert appliance.get(f"/v1/states/{state_id}").status_code == 404
    assert pooled_total(appliance) == before


def test_a_full_hit_with_a_pooled_clone_is_answered_by_the_post_itself(appliance, scripts):
    before = settled_pooled_total(appliance)
    appliance.prepare(["-f", "schema.sql", "-f", "more.sql"], scripts)
    wait_for_pooled(appliance, before + 2)
    response = appliance.submit(["-f", "schema.sql", "-f", "more.sql"], scripts)
    assert response.status_code == 201 and response.json()["status"] == "succeeded"  # no queue, no polling
    assert psql(response.json()["result"]["dsn"], "select 1").stdout.strip() == "1"  # the DSN is in the 201
    status = appliance.get(response.json()["status_url"]).json()
    assert [t["cached"] for t in executes(status)] == [True, True]
    assert psql(status["result"]["dsn"], "select count(*) from items").stdout.strip() == "0"
    kinds = [(e["type"], e.get("status")) for e in appliance.events(status["job_id"])]
    assert kinds[0] == ("status", "queued") and kinds[-2:] == [("status", "succeeded"), ("result", None)]
    deadline = time.monotonic() + 30  # the report is written by a worker, after the answer
    while "report.json" not in {a["name"] for a in appliance.get(f"/v1/prepare-jobs/{status['job_id']}/artifacts").json()}:
        assert time.monotonic() < deadline, "no report"
        time.sleep(0.2)


def pooled_postmasters(appliance) -> list[tuple[Path, int]]:
    """(volume, postmaster pid) of the running clones no listed instance owns, newest first."""
    owned = {i["port"] for i in appliance.get("/v1/instances").json()}
    running = []
    for volume in (appliance.data_dir / "store" / "orgs").glob("*/volumes/*"):
        pid_file = volume / "pgdata" / "postmaster.pid"
        try:
            lines, mtime = pid_file.read_text().splitlines(), pid_file.stat().st_mtime
        except OSError:
            continue
        if len(lines) > 3 and int(lines[3]) not in owned:
            running.append((mtime, volume, int(lines[0])))
    return [(volume, pid) for _, volume, pid in sorted(running, reverse=True)]


def test_a_pooled_clone_that_cannot_be_bound_leaves_the_hit_to_the_queue(appliance, scripts):
    args = ["-f", "schema.sql", "-f", "more.sql"]
    before = settled_pooled_total(appliance)
    appliance.prepare(args, scripts)
    wait_for_pooled(appliance, before + 2)
    broken = pooled_postmasters(appliance)[:2]  # this test's state is the last one pooled
    for _, pid in broken:
        os.kill(pid, signal.SIGKILL)
    response = appliance.submit(args, scripts)
    assert response.status_code == 201 and response.json()["status"] == "queued"  # not answered at admission
    assert f"job {response.json()['job_id']}: binding from the warm pool at admission failed" in appliance.log_text()
    status = appliance.wait(response.json()["job_id"])
    assert status["status"] == "succeeded"
    assert psql(status["result"]["dsn"], "select count(*) from items").stdout.strip() == "0"
    messages = [e.get("message") or "" for e in appliance.events(status["job_id"])]
    assert "warm pool: bound a running clone" not in messages
    assert status["result"]["instance_id"] not in {v.name for v, _ in broken}
    wait_until(lambda: not any(volume.exists() for volume, _ in broken), 30, "the broken clones to be removed")
