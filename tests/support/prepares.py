"""The psql prepare most end-to-end tests submit, and the steps a prepare's status reports."""
from __future__ import annotations

THREE_STEPS = ["-f", "schema.sql", "-f", "data.sql", "-f", "more.sql"]


def executes(status: dict) -> list[dict]:
    return [t for t in status["tasks"] if t["type"] == "state_execute"]
