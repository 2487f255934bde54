"""Liquibase changelogs for tests: the shop changelog the end-to-end tests prepare through a
running appliance (``prepare``), and the mixed-format one the runner tests plan (``plan``)."""
from __future__ import annotations

from pathlib import Path

from appliance.planning.liquibase.args import parse_liquibase_args

TESTS = Path(__file__).resolve().parents[1]
SHOP = TESTS / "e2e" / "changelogs" / "shop"
UPDATE = ["update", "--changelog-file", "changelog.xml"]
MIXED = TESTS / "liquibase_runners" / "changelogs" / "mixed"


def prepare(appliance, project: Path, *args: str) -> dict:
    response = appliance.submit_lb([*UPDATE, *args], project)
    assert response.status_code == 201, response.text
    return appliance.wait(response.json()["job_id"], timeout=300)


def plan(liquibase, connection, project, *args):
    command = parse_liquibase_args(["update", "--changelog-file=db/changelog.xml", *args])
    return liquibase.plan(command, connection, cwd=project)
