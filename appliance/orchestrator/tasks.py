"""A job's task rows: what admission (or a worker planning a job) writes, in one INSERT."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from appliance.control.models import PrepareJob, Task, utcnow
from appliance.planning.steps import PlannedStep


def admission_rows(job: PrepareJob, plan_summary: str) -> list[dict[str, Any]]:
    """``plan`` (done at admission) and ``resolve-image``, the first two tasks of every job."""
    now = utcnow()
    return [{"job": job, "task_id": "plan", "position": 0, "type": "plan", "status": "succeeded",
             "started_at": now, "finished_at": now, "summary": plan_summary},
            {"job": job, "task_id": "resolve-image", "position": 1, "type": "resolve_image", "status": "queued",
             "input_kind": "image", "input_id": job.image_id, "summary": job.resolved_image_id}]


def step_rows(job: PrepareJob, steps: list[PlannedStep], *, first_position: int,
              exists: Callable[[str], bool]) -> list[dict[str, Any]]:
    """The job's ``state_execute`` rows, each on its parent, and its ``prepare_instance``
    (unless plan-only). ``exists``: whether a step's state is here already (``cached``)."""
    rows: list[dict[str, Any]] = []
    parent_kind, parent_id = "image", job.resolved_image_id
    for n, step in enumerate(steps):  # execute-0 … execute-N-1
        rows.append({"job": job, "task_id": f"execute-{n}", "position": first_position + n,
                     "type": "state_execute", "status": "queued", "input_kind": parent_kind, "input_id": parent_id,
                     "task_hash": step.task_hash, "output_state_id": step.state_id,
                     "cached": exists(step.state_id), "summary": step.summary, "step_json": json.dumps(step.step)})
        parent_kind, parent_id = "state", step.state_id
    if not job.plan_only:
        rows.append({"job": job, "task_id": "prepare-instance", "position": first_position + len(steps),
                     "type": "prepare_instance", "status": "queued", "input_kind": parent_kind,
                     "input_id": parent_id})
    return rows


def insert_tasks(rows: list[dict[str, Any]]) -> None:
    """Task rows in one INSERT; every row must then name every column, so the missing get
    the model's defaults."""
    columns = {key for row in rows for key in row}
    Task.insert_many([{key: row.get(key, _default(Task, key)) for key in columns} for row in rows]).execute()


def _default(model: Any, name: str) -> Any:
    default = model._meta.fields[name].default
    return default() if callable(default) else default
