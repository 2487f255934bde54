"""Rendering for humans (rich tables, trees) and machines (the API's JSON, untouched).

Tree layout is computed as plain text lines by pure functions so it can be tested from
lists of dicts; rich only does the tables and colours, and is imported only when a table or a
console is made (a prepare that prints ``DSN=…`` never loads it).
"""
from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

SHORT_ID = 12


def stdout_console() -> Console:
    from rich.console import Console
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)  # never wrap or cut piped output
    return console


def note(text: str) -> None:
    """A message for the human on stderr: unwrapped, unstyled, so logs keep one line per note."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")
    sys.stdout.flush()


def short(identifier: str | None, long: bool = False) -> str:
    if not identifier:
        return "-"
    return identifier if long else identifier[:SHORT_ID]


def human_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


# -- trees ---------------------------------------------------------------------------------
def state_tree_lines(states: Iterable[dict[str, Any]], long: bool = False) -> list[str]:
    """States as a tree by ``parent_state_id``; a state whose parent is not listed is a root."""
    states = sorted(states, key=lambda s: (s.get("created_at") or "", s["state_id"]))
    known = {s["state_id"] for s in states}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for state in states:
        parent = state.get("parent_state_id")
        children.setdefault(parent if parent in known else None, []).append(state)

    def label(state: dict[str, Any]) -> str:
        parts = [short(state["state_id"], long), state.get("summary") or state.get("prepare_kind") or "",
                 human_bytes(state.get("size_bytes")), f"refs={state.get('refcount', 0)}"]
        if state.get("parent_state_id") not in known:
            parts.insert(1, f"[{state.get('image_id', '?')}]")
        return "  ".join(p for p in parts if p)

    return _tree_lines(children.get(None, []), lambda s: children.get(s["state_id"], []), label)


def instance_status(instance: dict[str, Any], long: bool = False) -> str:
    """The status; for a teardown that failed, also why and how often (the reconciler retries)."""
    error = instance.get("teardown_error")
    if not error:
        return instance["status"]
    reason = error if long else (error.splitlines() or [""])[0][:80]
    return f"{instance['status']} (failed {instance.get('teardown_attempts') or 1}x, retrying: {reason})"


def delete_tree_lines(node: dict[str, Any], long: bool = False) -> list[str]:
    """A ``DeleteResult.root`` with each node's blocking reason and open connections."""
    def label(n: dict[str, Any]) -> str:
        text = f"{n.get('kind', '?')} {short(n.get('id'), long)}"
        if n.get("connections"):
            text += f"  connections={n['connections']}"
        if n.get("blocked"):
            text += f"  BLOCKED: {n['blocked']}"
        if n.get("teardown_error"):
            text += f"  TEARDOWN FAILED, the appliance retries: {n['teardown_error'].splitlines()[0]}"
        return text

    return _tree_lines([node], lambda n: n.get("children") or [], label)


def _tree_lines(roots, children_of, label) -> list[str]:
    lines: list[str] = []

    def walk(node, prefix: str, is_last: bool, is_root: bool) -> None:
        if is_root:
            lines.append(label(node))
            child_prefix = ""
        else:
            lines.append(prefix + ("└── " if is_last else "├── ") + label(node))
            child_prefix = prefix + ("    " if is_last else "│   ")
        kids = children_of(node)
        for index, child in enumerate(kids):
            walk(child, child_prefix, index == len(kids) - 1, False)

    for root in roots:
        walk(root, "", True, True)
    return lines


# -- tables --------------------------------------------------------------------------------
def table(columns: list[str], rows: Iterable[list[str]]) -> Table:
    from rich.table import Table
    grid = Table(box=None, header_style="bold", pad_edge=False, show_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*row)
    return grid


def cached_label(task: dict[str, Any]) -> str:
    if task.get("cached") is None:
        return "-"
    return "yes" if task["cached"] else "no"


def tasks_table(tasks: list[dict[str, Any]], long: bool = False, with_job: bool = False) -> Table:
    """Task ids are names within their job (``execute-0``), so only the job id is shortened."""
    columns = ["task", "type", "status", "summary", "cached", "output state"]
    rows = [[t["task_id"], t["type"], t["status"], t.get("summary") or "", cached_label(t),
             short(t.get("output_state_id"), long)] for t in tasks]
    if with_job:
        columns.insert(0, "job")
        rows = [[short(t["job_id"], long), *row] for t, row in zip(tasks, rows)]
    return table(columns, rows)


def jobs_table(jobs: list[dict[str, Any]], long: bool = False) -> Table:
    return table(["job", "status", "kind", "image", "plan only", "created", "finished"],
                 [[short(j["job_id"], long), j["status"], j["prepare_kind"], j["image_id"],
                   "yes" if j.get("plan_only") else "no", j.get("created_at") or "-",
                   j.get("finished_at") or "-"] for j in jobs])


def instances_table(instances: list[dict[str, Any]], long: bool = False) -> Table:
    return table(["instance", "name", "state", "status", "port", "expires", "job"],
                 [[short(i["instance_id"], long), i.get("name") or "-", short(i["state_id"], long),
                   instance_status(i, long), str(i.get("port") or "-"), i.get("expires_at") or "-",
                   short(i.get("job_id"), long)] for i in instances])
