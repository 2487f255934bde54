"""What every kind of prepare plans: a chain of steps, each the next state of its parent."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PlannedStep:
    task_hash: str  # the step's key: what it does, and nothing else
    state_id: str  # the state it builds: its parent and its key
    summary: str
    step: dict[str, Any]  # what a worker needs to run it, the kind's own (stored as the task's step_json)
