"""The worker process's ``AppContext``, installed once by the worker entry point before it
starts taking jobs (RQ job functions are looked up by name and take only plain arguments)."""
from __future__ import annotations

from appliance.context import AppContext

_context: AppContext | None = None


def install(ctx: AppContext) -> None:
    global _context
    _context = ctx


def current() -> AppContext:
    if _context is None:
        raise RuntimeError("no AppContext installed: run jobs with `sqlrs-appliance worker`")
    return _context
