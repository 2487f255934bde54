"""Following a job: its status moved by its events as the appliance moved it, without reading
the status again after each event."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlrs_client.errors import SqlrsError
from sqlrs_client.types import Event, Job, Transfer

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
TRANSFER_POLL_SECONDS = 1.0  # a transfer records its progress about once a second
MAX_RECONNECTS = 5  # an event stream that ends before its job is opened again, from the first event


@dataclass(frozen=True)
class Progress:
    """One step of a followed job: its status now, and a line of log when the step is one."""
    job: Job
    log: str | None = None


def is_done(job: Job) -> bool:
    return job["status"] in TERMINAL


def transfer_moved(before: Transfer | None, now: Transfer) -> bool:
    """Worth reporting: the first look, or a change of status or progress."""
    return before is None or (before["status"], before["bytes_done"], before["bytes_total"]) != (
        now["status"], now["bytes_done"], now["bytes_total"])


def apply_event(job: Any, event: Event) -> bool:
    """Move ``job`` by one event; False when the event names a task ``job`` does not list yet
    (a Liquibase job plans its changesets on the worker): read the status again."""
    if event.get("type") == "status" and event.get("status"):
        job["status"] = event["status"]
    elif event.get("type") == "task":
        task = next((t for t in job.get("tasks") or [] if t["task_id"] == event.get("task_id")), None)
        if task is None:
            return False
        task["status"] = event.get("status") or task["status"]
        if task["status"] == "running":
            task["started_at"] = event.get("ts") or task.get("started_at")
        elif task["status"] in TERMINAL:
            task["finished_at"] = event.get("ts") or task.get("finished_at")
    return True


def stream_ended(job_id: str) -> SqlrsError:
    return SqlrsError("stream_ended", f"the event stream of job {job_id} kept ending before the job did")


class Replay:
    """A reopened stream replays from the first event; only the events not seen yet count."""

    def __init__(self) -> None:
        self.seen = 0
        self.index = 0

    def reopened(self) -> None:
        self.index = 0

    def is_new(self) -> bool:
        self.index += 1
        if self.index <= self.seen:
            return False
        self.seen = self.index
        return True
