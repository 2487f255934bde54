"""Concurrency and crash behaviour with real worker processes."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor

from appliance.orchestrator.parking import PARKED_MESSAGE
from tests.support.polling import wait_until
from tests.support.prepares import THREE_STEPS, executes


def test_ten_identical_prepares_submitted_at_once_build_each_step_once(appliance, scripts):
    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda _: appliance.submit(THREE_STEPS, scripts), range(10)))
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    statuses = [appliance.wait(r.json()["job_id"], timeout=300) for r in responses]
    assert all(s["status"] == "succeeded" for s in statuses), [(s["status"], s["error"]) for s in statuses
                                                               if s["status"] != "succeeded"]
    for index in range(3):
        built = [s for s in statuses if executes(s)[index]["cached"] is False]
        assert len(built) == 1, f"step {index} was built {len(built)} times"
    assert len({s["result"]["instance_id"] for s in statuses}) == 10


def _worker_pid(appliance, job_id: str) -> int | None:
    with sqlite3.connect(appliance.data_dir / "control.db") as db:
        row = db.execute("select worker from prepare_job where job_id = ?", (job_id,)).fetchone()
    return int(row[0].rsplit(":", 1)[1]) if row and row[0] else None


def test_killing_the_worker_mid_step_fails_the_job_and_leaves_nothing_behind(appliance, scripts):
    (scripts / "slow.sql").write_text("select pg_sleep(120);\n")
    volumes = lambda: set((appliance.data_dir / "store" / "orgs").glob("*/volumes/*"))  # noqa: E731
    before = volumes()
    job_id = appliance.submit(["-f", "schema.sql", "-f", "slow.sql"], scripts).json()["job_id"]
    appliance.first_event(job_id, lambda e: (e.get("message") or "").startswith("psql: -f slow.sql"))
    building = sorted(volumes() - before)
    assert len(building) == 1, "exactly one build clone exists while the step runs"
    os.kill(_worker_pid(appliance, job_id), signal.SIGKILL)

    status = wait_until(lambda: (s := appliance.get(f"/v1/prepare-jobs/{job_id}").json())["status"]
                       in ("failed", "succeeded", "cancelled") and s, 60, "the job to end")
    assert status["status"] == "failed"
    assert status["error"]["code"] == "internal_error"
    wait_until(lambda: not any(p.exists() for p in building), 30, "the build clone to be removed")
    leftovers = subprocess.run(["pgrep", "-f", str(building[0])], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", "a postgres process of the dead build is still running"
    assert appliance.get("/v1/instances").json() == [] or all(
        i["job_id"] != job_id for i in appliance.get("/v1/instances").json())
    assert executes(status)[1]["output_state_id"] not in {s["state_id"] for s in appliance.get("/v1/states").json()}


def test_a_job_waiting_for_another_jobs_build_gives_its_worker_to_the_next_job(appliance, scripts):
    """Two workers. A builds a slow step; B needs the same step, so it parks instead of holding
    the second worker; that worker runs C meanwhile, and C ends before A does. B then resumes and
    finds the step built."""
    (scripts / "slow.sql").write_text("select pg_sleep(6);\n")
    appliance.prepare(["-f", "schema.sql"], scripts)  # the base cluster and the shared first state
    a = appliance.submit(["-f", "schema.sql", "-f", "slow.sql"], scripts).json()["job_id"]
    appliance.first_event(a, lambda e: (e.get("message") or "").startswith("psql: -f slow.sql"))
    b = appliance.submit(["-f", "schema.sql", "-f", "slow.sql"], scripts).json()["job_id"]
    appliance.first_event(b, lambda e: e.get("message") == PARKED_MESSAGE, timeout=30)
    c = appliance.submit(["-f", "schema.sql", "-f", "data.sql"], scripts).json()["job_id"]
    first, second, third = (appliance.wait(job_id, timeout=120) for job_id in (a, b, c))
    assert [s["status"] for s in (first, second, third)] == ["succeeded"] * 3
    assert third["finished_at"] < first["finished_at"], "C waited for A although a worker was free"
    assert [t["cached"] for t in executes(second)] == [True, True]
