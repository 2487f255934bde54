"""The plain (non-TTY) progress view: one line per finished step, cached or built, in order."""
from __future__ import annotations

import io

from appliance.cli.watch import PlainView, server_elapsed


def task(task_id: str, type_: str, status: str, summary: str | None = None, cached: bool | None = None) -> dict:
    return {"task_id": task_id, "type": type_, "status": status, "summary": summary, "cached": cached,
            "started_at": "2024-01-01T00:00:00.000Z", "finished_at": "2024-01-01T00:00:01.500Z"}


def job(status: str, tasks: list[dict], plan_only: bool = False) -> dict:
    return {"job_id": "j1", "status": status, "plan_only": plan_only, "tasks": tasks}


def render(*statuses: dict) -> list[str]:
    buffer = io.StringIO()
    view = PlainView(buffer)
    for status in statuses:
        view.update(status)
    return buffer.getvalue().splitlines()


def test_each_finished_step_is_printed_once_with_cached_or_built():
    first = job("running", [task("execute-0", "state_execute", "succeeded", "-f a.sql", True),
                            task("execute-1", "state_execute", "running", "-f b.sql", False)])
    second = job("running", [task("execute-0", "state_execute", "succeeded", "-f a.sql", True),
                             task("execute-1", "state_execute", "succeeded", "-f b.sql", False)])
    assert render(first, second) == ["job j1: running",
                                     "  ✓ state_execute: -f a.sql (cached, 1.50s)",
                                     "  ✓ state_execute: -f b.sql (built, 1.50s)"]


def test_the_terminal_job_status_comes_after_its_last_step():
    lines = render(job("succeeded", [task("prepare-instance", "prepare_instance", "succeeded")]))
    assert lines == ["  ✓ prepare_instance (1.50s)", "job j1: succeeded"]


def test_a_failed_step_says_failed_not_built():
    lines = render(job("failed", [task("execute-0", "state_execute", "failed", "-f bad.sql", False)]))
    assert lines[0] == "  ✗ state_execute: -f bad.sql (failed, 1.50s)"


def test_a_plan_says_which_steps_it_would_build():
    lines = render(job("succeeded", [task("execute-0", "state_execute", "succeeded", "-c x", False)],
                       plan_only=True))
    assert lines[0] == "  ✓ state_execute: -c x (to build, 1.50s)"


def test_elapsed_time_comes_from_the_servers_timestamps():
    assert server_elapsed(task("t", "plan", "succeeded")) == 1.5


def test_a_task_that_never_started_has_no_elapsed_time():
    assert server_elapsed({"started_at": None, "finished_at": None}) is None
