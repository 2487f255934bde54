"""Show a prepare job's progress on stderr, as the client follows it (``Client.follow``: the
status read once, then moved by the job's events). A TTY gets a rich live table; anything else
gets one plain line per step, and rich is not even loaded.
"""
from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from appliance.cli import exit_codes
from appliance.cli.failures import CliFailure
from sqlrs_client.errors import SqlrsError
from sqlrs_client.follow import TERMINAL

if TYPE_CHECKING:
    from sqlrs_client import Client

_ICONS = {"queued": "·", "running": "…", "succeeded": "✓", "failed": "✗", "cancelled": "-"}


class ProgressView(Protocol):
    def update(self, status: dict[str, Any]) -> None: ...
    def log(self, message: str) -> None: ...
    def close(self) -> None: ...


def follow_job(client: Client, job_id: str, err: TextIO) -> dict[str, Any]:
    """Show progress until the job is terminal; return its final ``PrepareJobStatus``."""
    view: ProgressView = LiveView(err) if err.isatty() else PlainView(err)
    status: Any = None
    try:
        for progress in client.follow(job_id):
            status = progress.job
            if progress.log is not None:
                view.log(progress.log)
            else:
                view.update(status)
    except SqlrsError as error:
        if error.code != "stream_ended":
            raise
        raise CliFailure("stream_ended", f"{error.message}; resume with: sqlrs watch {job_id}",
                         exit_codes.UNAVAILABLE) from None
    finally:
        view.close()
    return status


def task_label(task: dict[str, Any]) -> str:
    """``state_execute: -f a.sql``; just the type when the task has no summary."""
    return f"{task['type']}: {task['summary']}" if task.get("summary") else task["type"]


def cache_word(task: dict[str, Any], plan_only: bool = False) -> str:
    """For a step: reused from the cache, or built (``to build`` when only planning)."""
    if task.get("cached") is None or task["type"] != "state_execute" or task["status"] != "succeeded":
        return ""
    return "cached" if task["cached"] else ("to build" if plan_only else "built")


def server_elapsed(task: dict[str, Any]) -> float | None:
    """Seconds a finished task took, from the server's own clock (no skew with ours)."""
    try:
        started = dt.datetime.fromisoformat(task["started_at"].replace("Z", "+00:00"))
        finished = dt.datetime.fromisoformat(task["finished_at"].replace("Z", "+00:00"))
    except (KeyError, AttributeError, TypeError, ValueError):
        return None
    return (finished - started).total_seconds()


class PlainView:
    """One line per finished step and per job status change: fit for logs and CI."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.reported: set[tuple[str, str]] = set()
        self.job_status: str | None = None

    def update(self, status: dict[str, Any]) -> None:
        changed = status["status"] != self.job_status
        self.job_status = status["status"]
        if changed and self.job_status not in TERMINAL:
            self._line(f"job {status['job_id']}: {self.job_status}")
        for task in status.get("tasks") or []:
            if task["status"] not in TERMINAL or (task["task_id"], task["status"]) in self.reported:
                continue
            self.reported.add((task["task_id"], task["status"]))
            elapsed = server_elapsed(task)
            extras = ", ".join(x for x in (task["status"] if task["status"] != "succeeded" else "",
                                            cache_word(task, bool(status.get("plan_only"))),
                                            f"{elapsed:.2f}s" if elapsed is not None else "") if x)
            line = f"  {_ICONS[task['status']]} {task_label(task)}"
            self._line(line + (f" ({extras})" if extras else ""))
        if changed and self.job_status in TERMINAL:
            self._line(f"job {status['job_id']}: {self.job_status}")

    def _line(self, text: str) -> None:
        """Unwrapped, unstyled: log collectors should see one line per event."""
        self.stream.write(text + "\n")
        self.stream.flush()

    def log(self, message: str) -> None:
        pass  # psql's output belongs to a failed job's error message, which the caller prints

    def close(self) -> None:
        pass


class LiveView:
    """A live table on the terminal: each task, cached/built, elapsed; the last log line."""

    def __init__(self, stream: TextIO):
        from rich.console import Console
        from rich.live import Live

        self.status: dict[str, Any] | None = None
        self.running_since: dict[str, float] = {}
        self.last_log = ""
        self.started = time.monotonic()
        self.live = Live(console=Console(file=stream, highlight=False), get_renderable=self.render,
                         refresh_per_second=8, transient=False)
        self.live.start()

    def update(self, status: dict[str, Any]) -> None:
        self.status = status
        for task in status.get("tasks") or []:
            if task["status"] == "running":
                self.running_since.setdefault(task["task_id"], time.monotonic())

    def log(self, message: str) -> None:
        self.last_log = message.strip().splitlines()[-1] if message.strip() else ""

    def close(self) -> None:
        self.live.refresh()
        self.live.stop()

    def render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        job = self.status or {}
        header = Text(f"job {job.get('job_id', '')}  {job.get('status', 'connecting')}  "
                      f"{time.monotonic() - self.started:.1f}s", style="bold")
        grid = Table(box=None, show_header=False, pad_edge=False)
        for _ in range(4):
            grid.add_column()
        for task in job.get("tasks") or []:
            grid.add_row(_ICONS.get(task["status"], "?"), task_label(task),
                         cache_word(task, bool(job.get("plan_only"))), self._elapsed(task))
        parts: list[Any] = [header, grid]
        if self.last_log and job.get("status") not in TERMINAL:
            parts.append(Text(self.last_log[:200], style="dim"))
        return Group(*parts)

    def _elapsed(self, task: dict[str, Any]) -> str:
        if task["status"] == "running" and task["task_id"] in self.running_since:
            return f"{time.monotonic() - self.running_since[task['task_id']]:.1f}s"
        elapsed = server_elapsed(task)
        return f"{elapsed:.2f}s" if elapsed is not None and task["status"] in TERMINAL else ""
