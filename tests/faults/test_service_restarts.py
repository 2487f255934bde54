"""Services restarted under load: Redis restarted empty, the API killed mid-stream, the Control DB
down for a few seconds. Nothing is lost, nothing runs twice, nothing is left behind."""
from __future__ import annotations

import json
import time

import httpx

from tests.support.polling import wait_until

from .rig import FaultRig, Outcome


def running_events(rig: FaultRig, job_id: str) -> int:
    return sum(1 for e in rig.app.events(job_id) if e["type"] == "status" and e.get("status") == "running")


def test_redis_restarted_empty_with_jobs_queued_and_running(rig: FaultRig, outcome: Outcome, tmp_path):
    outcome.kind = "redis restarted empty (1 job running, 4 queued)"
    try:
        jobs = rig.one_running_four_queued(tmp_path)
        rig.redis.kill()
        rig.redis.start()  # empty: no queues, no tokens, no locks
        outcome.injected += 1
        final = rig.account(outcome, jobs, bound=120)
    finally:
        assert rig.app.put("/v1/orgs/default/quota", json={"max_running_jobs": None}).status_code == 200
    assert {s["status"] for s in final.values()} == {"succeeded"}, final
    assert [running_events(rig, j) for j in jobs] == [1] * len(jobs), "a job ran twice"
    built = rig.query("select output_state_id, count(*) from task where cached = false and output_state_id is not null"
                      " group by output_state_id having count(*) > 1")
    assert built == [], "a state was built twice"
    assert outcome.clean, outcome


def sse_events(rig: FaultRig, job_id: str, *, last_event_id: int | None = None, until=None) -> list[dict]:
    """Read the job's SSE stream (from after ``last_event_id``) until ``until(event)`` or the end."""
    headers = {**rig.app.headers, "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    events, current = [], {}
    with httpx.stream("GET", f"{rig.app.url}/v1/prepare-jobs/{job_id}/events", headers=headers,
                      timeout=120) as response:
        for line in response.iter_lines():
            if line.startswith("id: "):
                current["id"] = int(line[4:])
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
            elif not line and "id" in current:
                events.append(current)
                current = {}
                if until is not None and until(events[-1]["data"]):
                    break
    return events


def test_api_killed_mid_stream_and_restarted_the_client_resumes_without_gaps(rig: FaultRig, outcome: Outcome,
                                                                            tmp_path):
    outcome.kind = "API killed mid-stream, restarted"
    with rig.workers_apart():
        job = rig.submit(tmp_path, "select pg_sleep(1.5);", "select pg_sleep(1.5);", "select pg_sleep(1.5);")
        before = sse_events(rig, job, until=lambda e: e["type"] == "task" and e.get("task_id") == "execute-1"
                            and e.get("status") == "running")
        rig.kill_supervisor_only()  # the API dies; the reconciler and the workers go on
        outcome.injected += 1
        rig.app.start(command="api")
        after = sse_events(rig, job, last_event_id=before[-1]["id"])
        ids = [e["id"] for e in before + after]
        assert ids == list(range(len(ids))), "the resumed stream has a gap or a duplicate"
        assert [e["data"]["status"] for e in after if e["data"]["type"] == "status"][-1] == "succeeded"
        assert len(ids) == len(rig.app.events(job))
        final = rig.account(outcome, [job])
    assert final[job]["status"] == "succeeded"
    assert outcome.clean, outcome


def test_control_db_down_for_seconds_while_jobs_run(rig: FaultRig, outcome: Outcome, tmp_path, control_postgres):
    outcome.kind = "Control DB down 3 s (jobs running)"
    jobs = [rig.submit(tmp_path, "select pg_sleep(2);", "create table t (i int);") for _ in range(3)]
    wait_until(lambda: rig.query("select 1 from prepare_job where status = 'running'"), 60, "a running job")
    control_postgres.halt()
    outcome.injected += 1
    try:
        answers = []
        for _ in range(10):
            answers.append(rig.app.get("/v1/prepare-jobs"))
            time.sleep(0.3)
    finally:
        control_postgres.resume()
    codes = {(r.status_code, r.json().get("code") if r.status_code >= 400 else None) for r in answers}
    assert codes == {(503, "control_db_unavailable")}, codes
    final = rig.account(outcome, jobs, bound=120)
    assert {s["status"] for s in final.values()} <= {"succeeded", "failed"}
    for status in final.values():
        if status["status"] == "failed":  # only for the outage, and saying so
            assert status["error"]["code"] in ("control_db_unavailable", "internal_error"), status
    outcome.notes.append(f"jobs succeeded after the outage: {sum(s['status'] == 'succeeded' for s in final.values())}/3")
    after = rig.account(outcome, [rig.submit(tmp_path, "create table after_the_outage (i int);")])
    assert [s["status"] for s in after.values()] == ["succeeded"]
    assert outcome.clean, outcome
