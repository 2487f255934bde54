"""How events move a followed job's status between two reads of it."""
from __future__ import annotations

from sqlrs_client.follow import Replay, apply_event


def task(task_id: str, type_: str, status: str) -> dict:
    return {"task_id": task_id, "type": type_, "status": status, "summary": None, "cached": None,
            "started_at": "2024-01-01T00:00:00.000Z", "finished_at": None}


def job(status: str, tasks: list[dict]) -> dict:
    return {"job_id": "j1", "status": status, "plan_only": False, "tasks": tasks}


def test_a_task_event_moves_that_task_and_stamps_it_with_the_server_time():
    status = job("running", [task("execute-0", "state_execute", "running")])
    assert apply_event(status, {"type": "task", "task_id": "execute-0", "status": "succeeded",
                                "ts": "2024-01-01T00:00:02.250Z"})
    assert status["tasks"][0]["status"] == "succeeded"
    assert status["tasks"][0]["finished_at"] == "2024-01-01T00:00:02.250Z"


def test_a_status_event_moves_the_job():
    status = job("queued", [])
    assert apply_event(status, {"type": "status", "status": "running"})
    assert status["status"] == "running"


def test_a_task_the_status_does_not_hold_asks_for_the_status_again():
    status = job("running", [task("plan", "plan", "succeeded")])
    assert not apply_event(status, {"type": "task", "task_id": "changeset-3", "status": "running"})
    assert [t["task_id"] for t in status["tasks"]] == ["plan"]


def test_a_reopened_stream_counts_only_the_events_after_those_already_seen():
    replay = Replay()
    assert [replay.is_new() for _ in range(3)] == [True, True, True]
    replay.reopened()
    assert [replay.is_new() for _ in range(5)] == [False, False, False, True, True]
