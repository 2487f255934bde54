"""Workers SIGKILLed at every dangerous point of a build: the job fails within the bound, never
stays running, nothing is left behind, no half-recorded state, and the next job succeeds."""
from __future__ import annotations

import os
import signal

import pytest

from .rig import FaultRig, Outcome


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def assert_recovered(rig: FaultRig, outcome: Outcome, tmp_path, killed: list[str]) -> None:
    """The killed jobs failed; a job submitted afterwards builds and hands out a working DSN."""
    final = rig.account(outcome, killed)
    assert {s["status"] for s in final.values()} == {"failed"}, final
    after = rig.account(outcome, [rig.submit(tmp_path, "create table after_the_fault (i int);")])
    assert [s["status"] for s in after.values()] == ["succeeded"], after
    assert outcome.clean, outcome


def test_worker_killed_during_psql(rig: FaultRig, outcome: Outcome, tmp_path):
    job = rig.submit(tmp_path, "create table t (i int);", "select pg_sleep(60);")
    rig.wait_for_event(job, lambda e: (e.get("message") or "").startswith("psql:") and "-1.sql" in e["message"])
    kill(rig.worker_of(job))
    outcome.injected += 1
    assert_recovered(rig, outcome, tmp_path, [job])


def test_worker_killed_during_a_liquibase_run_of_changesets(rig: FaultRig, outcome: Outcome, tmp_path):
    job = rig.submit_liquibase(tmp_path, "create table a (i int)", "create table b (i int)",
                               "select pg_sleep(60)", "create table d (i int)")
    rig.wait_for_event(job, lambda e: "changesets in one run" in (e.get("message") or ""))
    rig.wait_for_event(job, lambda e: e.get("task_id") == "execute-3" and e.get("status") == "running")
    kill(rig.worker_of(job))  # Liquibase is inside changeset 4's sleep (execute-3); states 2 and 3 are forks
    outcome.injected += 1
    assert_recovered(rig, outcome, tmp_path, [job])


@pytest.mark.parametrize("point", ["clone", "snapshot", "instance-start"])
def test_worker_killed_at(rig: FaultRig, outcome: Outcome, tmp_path, point: str):
    outcome.kind = f"worker killed at {point}"
    rig.arm(point)
    job = rig.submit(tmp_path, "create table t (i int);")
    kill(rig.held_worker(point))
    outcome.injected += 1
    assert_recovered(rig, outcome, tmp_path, [job])
